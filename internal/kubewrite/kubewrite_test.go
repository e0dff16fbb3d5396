package kubewrite

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// calls counts the writes a fake API server received.
type calls struct{ creates, updates int }

// newClient is a fake API server holding objs; funcs, when given,
// intercept calls after they are counted.
func newClient(n *calls, funcs interceptor.Funcs, objs ...client.Object) client.Client {
	create, update := funcs.Create, funcs.Update
	funcs.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		n.creates++
		if create != nil {
			return create(ctx, c, obj, opts...)
		}
		return c.Create(ctx, obj, opts...)
	}
	funcs.Update = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		n.updates++
		if update != nil {
			return update(ctx, c, obj, opts...)
		}
		return c.Update(ctx, obj, opts...)
	}
	return fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).WithInterceptorFuncs(funcs).Build()
}

func configMap(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Data: data}
}

// setColour is a mutate function giving a ConfigMap one entry.
func setColour(colour string) func(*corev1.ConfigMap) error {
	return func(cm *corev1.ConfigMap) error {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["colour"] = colour
		return nil
	}
}

func stored(t *testing.T, c client.Client) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web"}, &cm); err != nil {
		t.Fatal(err)
	}
	return &cm
}

func conflict(name string) error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, name, errors.New("the object has been modified"))
}

func TestCreateOrUpdateCreatesWhatIsMissing(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{})
	sawNew := false
	out, res, err := CreateOrUpdate(context.Background(), c, configMap(nil), func(cm *corev1.ConfigMap) error {
		sawNew = cm.ResourceVersion == ""
		return setColour("blue")(cm)
	})
	if err != nil || res != Created || !sawNew {
		t.Fatalf("res %v, err %v, mutate saw a new object: %v", res, err, sawNew)
	}
	if out.ResourceVersion == "" || stored(t, c).Data["colour"] != "blue" {
		t.Errorf("returned %+v, stored %+v", out, stored(t, c))
	}
}

func TestCreateOrUpdateWritesOnlyChanges(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{}, configMap(map[string]string{"colour": "blue"}))
	_, res, err := CreateOrUpdate(context.Background(), c, configMap(nil), setColour("blue"))
	if err != nil || res != Unchanged || n.updates+n.creates != 0 {
		t.Fatalf("same state: res %v, err %v, %+v", res, err, n)
	}
	out, res, err := CreateOrUpdate(context.Background(), c, configMap(nil), setColour("green"))
	if err != nil || res != Updated || n.updates != 1 {
		t.Fatalf("new state: res %v, err %v, %+v", res, err, n)
	}
	if out.Data["colour"] != "green" || stored(t, c).Data["colour"] != "green" {
		t.Errorf("returned %v, stored %v", out.Data, stored(t, c).Data)
	}
}

// TestConflictsAreReadAgainAndRetried has another writer change the
// object between each of the first reads and writes: every attempt reads
// afresh, so the other writer's change is kept.
func TestConflictsAreReadAgainAndRetried(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		if n.updates <= 2 {
			other := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
				return err
			}
			other.Data["other"] = "writer"
			if err := c.Update(ctx, other); err != nil {
				return err
			}
		}
		return c.Update(ctx, obj, opts...)
	}}, configMap(map[string]string{"colour": "blue"}))
	_, res, err := Update(context.Background(), c, configMap(nil), setColour("green"))
	if err != nil || res != Updated || n.updates != 3 {
		t.Fatalf("res %v, err %v, %+v", res, err, n)
	}
	if got := stored(t, c).Data; got["colour"] != "green" || got["other"] != "writer" {
		t.Errorf("stored %v", got)
	}
}

// TestAnObjectCreatedMeanwhileIsUpdated has another writer create the
// object between the read that found nothing and the create.
func TestAnObjectCreatedMeanwhileIsUpdated(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if err := c.Create(ctx, configMap(map[string]string{"other": "writer"})); err != nil {
			return err
		}
		return c.Create(ctx, obj, opts...)
	}})
	_, res, err := CreateOrUpdate(context.Background(), c, configMap(nil), setColour("green"))
	if err != nil || res != Updated || n.creates != 1 || n.updates != 1 {
		t.Fatalf("res %v, err %v, %+v", res, err, n)
	}
	if got := stored(t, c).Data; got["colour"] != "green" || got["other"] != "writer" {
		t.Errorf("stored %v", got)
	}
}

func TestRetriesEnd(t *testing.T) {
	alwaysConflict := interceptor.Funcs{Update: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.UpdateOption) error {
		return conflict(obj.GetName())
	}}
	t.Run("after five attempts", func(t *testing.T) {
		var n calls
		c := newClient(&n, alwaysConflict, configMap(nil))
		_, res, err := Update(context.Background(), c, configMap(nil), setColour("green"))
		if !apierrors.IsConflict(err) || res != Unchanged || n.updates != backoff.Steps {
			t.Fatalf("res %v, err %v, %+v", res, err, n)
		}
	})
	t.Run("when the context ends", func(t *testing.T) {
		var n calls
		c := newClient(&n, alwaysConflict, configMap(nil))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, _, err := Update(ctx, c, configMap(nil), setColour("green"))
		if !apierrors.IsConflict(err) || n.updates != 1 || time.Since(start) > time.Second {
			t.Fatalf("err %v, %+v after %s", err, n, time.Since(start))
		}
	})
}

func TestOtherErrorsAreNotRetried(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{}, configMap(nil))
	refused := errors.New("refused")
	_, _, err := CreateOrUpdate(context.Background(), c, configMap(nil), func(*corev1.ConfigMap) error { return refused })
	if !errors.Is(err, refused) || n.updates+n.creates != 0 {
		t.Fatalf("err %v, %+v", err, n)
	}
	forbidden := newClient(&n, interceptor.Funcs{Update: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.UpdateOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, obj.GetName(), errors.New("no"))
	}}, configMap(nil))
	if _, _, err := Update(context.Background(), forbidden, configMap(nil), setColour("green")); !apierrors.IsForbidden(err) || n.updates != 1 {
		t.Fatalf("err %v, %+v", err, n)
	}
}

func TestUpdateCreatesNothing(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{})
	called := false
	_, _, err := Update(context.Background(), c, configMap(nil), func(*corev1.ConfigMap) error {
		called = true
		return nil
	})
	if !apierrors.IsNotFound(err) || called || n.creates != 0 {
		t.Fatalf("err %v, mutate called %v, %+v", err, called, n)
	}
}

// TestUnstructuredNumbersCompareByValue writes back an unstructured
// object whose number mutate sets as a float64 where the API server's
// answer holds an int64: the same JSON, so nothing to write.
func TestUnstructuredNumbersCompareByValue(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{})
	widget := func() *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{}}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"})
		u.SetNamespace("shop")
		u.SetName("web")
		return u
	}
	weight := func(w any) func(*unstructured.Unstructured) error {
		return func(u *unstructured.Unstructured) error {
			u.Object["spec"] = map[string]any{"weight": w}
			return nil
		}
	}
	if _, res, err := CreateOrUpdate(context.Background(), c, widget(), weight(int64(100))); err != nil || res != Created {
		t.Fatalf("create: res %v, err %v", res, err)
	}
	if _, res, err := CreateOrUpdate(context.Background(), c, widget(), weight(float64(100))); err != nil || res != Unchanged || n.updates != 0 {
		t.Fatalf("same weight: res %v, err %v, %+v", res, err, n)
	}
	if _, res, err := CreateOrUpdate(context.Background(), c, widget(), weight(float64(90))); err != nil || res != Updated || n.updates != 1 {
		t.Fatalf("new weight: res %v, err %v, %+v", res, err, n)
	}
}

func TestDeleteIfPresent(t *testing.T) {
	var n calls
	c := newClient(&n, interceptor.Funcs{}, configMap(nil))
	for range 2 {
		if err := DeleteIfPresent(context.Background(), c, configMap(nil)); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Get(context.Background(), client.ObjectKey{Namespace: "shop", Name: "web"}, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
}
