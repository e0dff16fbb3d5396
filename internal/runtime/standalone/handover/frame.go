package handover

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// maxFrame bounds a frame's body: a full batch of the longest names,
// escaped, with the largest metadata, fits with room to spare.
const maxFrame = 256 << 10

// headerSize is the length prefix of a frame.
const headerSize = 4

// batchSize is the most descriptors sent with one frame, well under the
// kernel's SCM_MAX_FD (253).
const batchSize = 64

// kind names a message: what it says and who sends it.
type kind string

const (
	kindHello    kind = "hello"    // new → old: who asks
	kindAccepted kind = "accepted" // old → new: the hand-over goes ahead
	kindRefused  kind = "refused"  // old → new: it does not, and why
	kindFiles    kind = "files"    // old → new: a batch of descriptors
	kindReleased kind = "released" // old → new: the lock is free
	kindServing  kind = "serving"  // new → old: the new side accepts now
	kindDrained  kind = "drained"  // old → new: it forwards no request any more
)

// message is the JSON body of a frame. Fields a kind does not use are
// left out.
type message struct {
	Kind    kind     `json:"kind"`
	PID     int      `json:"pid,omitempty"`
	Version string   `json:"version,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Names   []string `json:"names,omitempty"`
	More    bool     `json:"more,omitempty"`
	Meta    []byte   `json:"meta,omitempty"`
}

// encodeFrame is m framed: its length, then its JSON.
func encodeFrame(m message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(body) > maxFrame {
		return nil, fmt.Errorf("a %s frame of %d bytes is over the limit of %d", m.Kind, len(body), maxFrame)
	}
	frame := make([]byte, headerSize, headerSize+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	return append(frame, body...), nil
}

// frameLength reads a frame's length prefix.
func frameLength(header []byte) (int, error) {
	n := binary.BigEndian.Uint32(header)
	if n == 0 || n > maxFrame {
		return 0, fmt.Errorf("%w: a frame of %d bytes (1 to %d allowed)", ErrProtocol, n, maxFrame)
	}
	return int(n), nil
}

// decodeMessage parses a frame's body, which came with nfds descriptors,
// and checks that it is a well-formed message of its kind.
func decodeMessage(body []byte, nfds int) (message, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m message
	if err := dec.Decode(&m); err != nil {
		return message{}, fmt.Errorf("%w: malformed frame: %v", ErrProtocol, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return message{}, fmt.Errorf("%w: malformed frame: data after the message", ErrProtocol)
	}
	if err := m.check(nfds); err != nil {
		return message{}, fmt.Errorf("%w: %s frame: %v", ErrProtocol, m.Kind, err)
	}
	return m, nil
}

// check reports what makes m, which came with nfds descriptors, not a
// message of its kind.
func (m message) check(nfds int) error {
	want := 0
	switch m.Kind {
	case kindHello:
		if m.PID <= 0 {
			return fmt.Errorf("pid %d, want a process id", m.PID)
		}
	case kindFiles:
		if len(m.Names) > batchSize {
			return fmt.Errorf("%d names, at most %d to a frame", len(m.Names), batchSize)
		}
		if err := checkNames(m.Names, map[string]bool{}); err != nil {
			return err
		}
		if m.More && len(m.Meta) > 0 {
			return errors.New("metadata before the last files frame")
		}
		if len(m.Meta) > MaxMeta {
			return fmt.Errorf("metadata of %d bytes, at most %d", len(m.Meta), MaxMeta)
		}
		want = len(m.Names)
	case kindAccepted, kindRefused, kindReleased, kindServing, kindDrained:
	default:
		return fmt.Errorf("unknown kind %q", m.Kind)
	}
	if nfds != want {
		return fmt.Errorf("%d descriptors attached, want %d", nfds, want)
	}
	return nil
}

// checkNames reports the first name that is empty, too long, not UTF-8
// (JSON would mangle it) or already in seen, and adds the others to seen.
func checkNames(names []string, seen map[string]bool) error {
	for i, name := range names {
		switch {
		case name == "":
			return fmt.Errorf("descriptor %d: empty name", i)
		case len(name) > maxName:
			return fmt.Errorf("descriptor %d: name of %d bytes, at most %d", i, len(name), maxName)
		case !utf8.ValidString(name):
			return fmt.Errorf("descriptor %d: name %q is not UTF-8", i, name)
		case seen[name]:
			return fmt.Errorf("descriptor %d: name %q given twice", i, name)
		}
		seen[name] = true
	}
	return nil
}
