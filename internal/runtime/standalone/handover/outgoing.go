package handover

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// Outgoing is a hand-over on the old side. Its methods are the stages, to
// be called in order and not concurrently; Close may be called at any time
// and ends a pending call.
type Outgoing struct {
	session
	hello Hello
	l     *Listener
	once  sync.Once
}

// Hello is what the new side said of itself.
func (o *Outgoing) Hello() Hello { return o.hello }

// SendFiles passes files, by name and in this order, and meta to the new
// side. The files stay open here: the new side gets duplicates.
func (o *Outgoing) SendFiles(ctx context.Context, files []NamedFile, meta []byte) error {
	return o.step(stageFiles, func() error { return sendFiles(ctx, o.w, files, meta) })
}

// Released tells the new side that this daemon has stopped deciding and
// released the state directory's lock.
func (o *Outgoing) Released(ctx context.Context) error {
	return o.step(stageReleased, func() error {
		return o.w.writeFrame(ctx, message{Kind: kindReleased}, nil)
	})
}

// AwaitServing waits for the new side to say that it serves.
func (o *Outgoing) AwaitServing(ctx context.Context) error {
	return o.step(stageServing, func() error {
		_, _, err := o.w.readFrame(ctx, kindServing)
		return err
	})
}

// Drained tells the new side that this daemon forwards no request any
// more: it may stop the versions it no longer routes to.
func (o *Outgoing) Drained(ctx context.Context) error {
	return o.step(stageDrained, func() error {
		return o.w.writeFrame(ctx, message{Kind: kindDrained}, nil)
	})
}

// Close ends the hand-over's connection and lets the listener accept
// another one.
func (o *Outgoing) Close() error {
	var err error
	o.once.Do(func() {
		err = o.w.c.Close()
		o.l.release(o)
	})
	return err
}

// sendFiles sends files in batches the kernel takes, meta with the last.
func sendFiles(ctx context.Context, w wire, files []NamedFile, meta []byte) error {
	if len(meta) > MaxMeta {
		return fmt.Errorf("metadata of %d bytes, at most %d", len(meta), MaxMeta)
	}
	if len(files) > MaxFiles {
		return fmt.Errorf("%d descriptors, at most %d", len(files), MaxFiles)
	}
	names := make([]string, len(files))
	opened := make([]*os.File, len(files))
	for i, f := range files {
		if f.File == nil {
			return fmt.Errorf("descriptor %d (%q): no file", i, f.Name)
		}
		names[i], opened[i] = f.Name, f.File
	}
	if err := checkNames(names, map[string]bool{}); err != nil {
		return err
	}
	for start := 0; ; start += batchSize {
		end := min(start+batchSize, len(files))
		m := message{Kind: kindFiles, Names: names[start:end], More: end < len(files)}
		if !m.More {
			m.Meta = meta
		}
		if err := w.writeFrame(ctx, m, opened[start:end]); err != nil {
			return err
		}
		if !m.More {
			return nil
		}
	}
}
