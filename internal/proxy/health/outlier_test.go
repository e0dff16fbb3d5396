package health

import "testing"

// TestOutliersEjectOncePerRun: a run of failures reaching the threshold
// is an outlier for exactly one request, which starts a fresh run; any
// other answer ends a run; detection off finds nothing.
func TestOutliersEjectOncePerRun(t *testing.T) {
	o := NewOutliers(3)
	var r Run
	for i, failed := range []bool{true, true, false, true, true} {
		if _, outlier := o.Observe(&r, failed); outlier {
			t.Fatalf("answer %d: an outlier before 3 failures in a row", i)
		}
	}
	n, outlier := o.Observe(&r, true)
	if !outlier || n != 3 {
		t.Fatalf("the third failure in a row: n %d, outlier %v", n, outlier)
	}
	for i := range 2 {
		if _, outlier := o.Observe(&r, true); outlier {
			t.Fatalf("failure %d of a fresh run: an outlier", i+1)
		}
	}
	if _, outlier := o.Observe(&r, true); !outlier {
		t.Fatal("a second run of 3 failures is no outlier")
	}
	off := NewOutliers(-1)
	for range 10 {
		if _, outlier := off.Observe(&r, true); outlier || off.On() {
			t.Fatal("detection turned off found an outlier")
		}
	}
}
