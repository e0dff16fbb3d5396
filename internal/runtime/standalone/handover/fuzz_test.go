package handover

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// framed is body with its length prefix.
func framed(body string) string { return sized(len(body), body) }

// sized is body after a length prefix that says n.
func sized(n int, body string) string {
	var header [headerSize]byte
	binary.BigEndian.PutUint32(header[:], uint32(n))
	return string(header[:]) + body
}

// fuzzSeeds are frames as they come off the socket, with the number of
// descriptors that came with them.
var fuzzSeeds = []struct {
	frame string
	fds   uint8
}{
	{framed(`{"kind":"hello","pid":4242,"version":"v1.2.3"}`), 0},
	{framed(`{"kind":"accepted"}`), 0},
	{framed(`{"kind":"refused","reason":"a hand-over to pid 7 is in progress"}`), 0},
	{framed(`{"kind":"files","names":["listener:proxy","pipe:web-1:stdout"],"more":true}`), 2},
	{framed(`{"kind":"files","names":["listener:api"],"meta":"eyJnZW4iOjJ9"}`), 1},
	{framed(`{"kind":"files"}`), 0},
	{framed(`{"kind":"released"}`), 0},
	{framed(`{"kind":"serving"}`), 0},
	{framed(`{"kind":"serving"}`), 3},
	{framed(`{"kind":"files","names":["a","a"]}`), 2},
	{framed(`{"kind":"files","names":[""]}`), 1},
	{framed(`{"kind":"hello","pid":-1}`), 0},
	{framed(`{"kind":"hello","pid":1,"extra":true}`), 0},
	{framed(`{"kind":"files","names":["\u00e9<>"]} trailing`), 1},
	{sized(maxFrame+1, `{}`), 0},
	{sized(0, ""), 0},
	{"\x00\x00", 0},
}

// FuzzDecodeFrame feeds the frame decoder what a peer may send. It must
// not panic, must refuse with ErrProtocol, and what it accepts must be a
// valid message that encodes to a frame decoding to the same message.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s.frame), s.fds)
	}
	f.Fuzz(func(t *testing.T, frame []byte, fds uint8) {
		if len(frame) < headerSize {
			return
		}
		n, err := frameLength(frame[:headerSize])
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("frameLength refused with %v, not ErrProtocol", err)
			}
			return
		}
		body := frame[headerSize:]
		if len(body) < n {
			return // the reader waits for the rest
		}
		m, err := decodeMessage(body[:n], int(fds))
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeMessage refused with %v, not ErrProtocol", err)
			}
			return
		}
		again, err := encodeFrame(m)
		if err != nil {
			// Encoding escapes <, > and & that the input may have had raw.
			if strings.Contains(err.Error(), "over the limit") {
				return
			}
			t.Fatalf("encoding %+v: %v", m, err)
		}
		m2, err := decodeMessage(again[headerSize:], int(fds))
		if err != nil {
			t.Fatalf("%q decoded, but its encoding %q does not: %v", body[:n], again, err)
		}
		if third, _ := encodeFrame(m2); !bytes.Equal(third, again) {
			t.Fatalf("%q decodes to %+v, which encodes to %q, then %q", body[:n], m, again, third)
		}
	})
}
