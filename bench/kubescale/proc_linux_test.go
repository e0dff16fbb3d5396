package kubescale

import (
	"os"
	"testing"
	"time"
)

func TestReadProcOfThisProcess(t *testing.T) {
	// Burn some CPU so that at least one tick is counted.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	st, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU <= 0 || st.RSS <= 0 || st.HWM < st.RSS {
		t.Errorf("readProc(self) = %+v: want CPU > 0 and 0 < RSS <= HWM", st)
	}
}
