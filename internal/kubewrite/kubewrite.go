// Package kubewrite writes the Kubernetes objects pipit manages by
// read-modify-write: it reads an object, lets the caller shape it into the
// desired state, and writes it only when that changed it, reading it again
// and retrying with backoff when another writer came in between. The
// Deployment target and the Kubernetes routers share it; it knows none of
// pipit's families, only the API server's client.
//
// Every call is bounded by its context: the caller sets the deadline of
// the whole write, retries included.
package kubewrite

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Result says what a write did to the object.
type Result int

const (
	// Unchanged says the object was as desired already: nothing was
	// written.
	Unchanged Result = iota
	// Created says the object did not exist and was created.
	Created
	// Updated says the object existed and was written back changed.
	Updated
)

// String is the result as a log message starts it: "created",
// "updated" or "unchanged".
func (r Result) String() string {
	switch r {
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// backoff paces the attempts of one write: five at most, 10 ms apart at
// first and twice as far each time, so that a few writers racing for one
// object settle within a tenth of a second.
var backoff = wait.Backoff{Steps: 5, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.1}

// CreateOrUpdate makes the object obj names what mutate makes of it. obj
// only names the object: its name and namespace and, for an unstructured
// object, its kind; each attempt reads into a copy of it. When the object
// exists mutate gets it as read and it is written back if mutate changed
// it; when it does not, mutate gets the copy as it is (its
// ResourceVersion empty) and it is created. mutate's error is returned as
// it is, and nothing is written. A conflict (someone else wrote in
// between) or an object created meanwhile by someone else starts again
// from the read. CreateOrUpdate returns the object as written, or as read
// when it was unchanged.
func CreateOrUpdate[T client.Object](ctx context.Context, c client.Client, obj T, mutate func(T) error) (T, Result, error) {
	return write(ctx, c, obj, mutate, true)
}

// Update is CreateOrUpdate for an object that must exist: a missing one
// is not created, and its NotFound error is returned as it is (see
// apierrors.IsNotFound).
func Update[T client.Object](ctx context.Context, c client.Client, obj T, mutate func(T) error) (T, Result, error) {
	return write(ctx, c, obj, mutate, false)
}

// DeleteIfPresent deletes obj; one that is gone already is no error.
func DeleteIfPresent(ctx context.Context, c client.Client, obj client.Object) error {
	return client.IgnoreNotFound(c.Delete(ctx, obj))
}

// write runs one read-modify-write, attempting again on conflicts.
func write[T client.Object](ctx context.Context, c client.Client, obj T, mutate func(T) error, create bool) (T, Result, error) {
	var out T
	var res Result
	err := retryConflicts(ctx, func() error {
		var err error
		out = obj.DeepCopyObject().(T)
		res, err = writeOnce(ctx, c, out, mutate, create)
		return err
	})
	return out, res, err
}

// writeOnce reads obj, lets mutate shape it and writes it when needed.
func writeOnce[T client.Object](ctx context.Context, c client.Client, obj T, mutate func(T) error, create bool) (Result, error) {
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if create && apierrors.IsNotFound(err) {
		if err := mutate(obj); err != nil {
			return Unchanged, err
		}
		if err := c.Create(ctx, obj); err != nil {
			return Unchanged, err
		}
		return Created, nil
	}
	if err != nil {
		return Unchanged, err
	}
	before := obj.DeepCopyObject().(T)
	if err := mutate(obj); err != nil {
		return Unchanged, err
	}
	if same, err := equal(before, obj); err != nil || same {
		return Unchanged, err
	}
	if err := c.Update(ctx, obj); err != nil {
		return Unchanged, err
	}
	return Updated, nil
}

// equal says whether mutate left an object as it was read. Typed objects
// compare semantically (a nil and an empty list are alike); unstructured
// ones by their JSON, as the numbers read back from the API server may be
// of another Go type (int64, float64) than those the caller writes.
func equal(before, after client.Object) (bool, error) {
	b, ok := before.(*unstructured.Unstructured)
	if !ok {
		return equality.Semantic.DeepEqual(before, after), nil
	}
	bj, err := json.Marshal(b.Object)
	if err != nil {
		return false, err
	}
	aj, err := json.Marshal(after.(*unstructured.Unstructured).Object)
	if err != nil {
		return false, err
	}
	return string(bj) == string(aj), nil
}

// retryConflicts runs f until it succeeds, fails otherwise than by a
// conflict with another writer, runs out of attempts or ctx ends; it
// returns f's last error.
func retryConflicts(ctx context.Context, f func() error) error {
	b := backoff
	for {
		err := f()
		if !retriable(err) || b.Steps <= 1 {
			return err
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retriable says whether an attempt lost a race with another writer: the
// object changed between the read and the write, or was created first.
func retriable(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
