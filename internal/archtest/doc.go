// Package archtest holds the tests that keep pipit's architecture as
// docs/architecture.md draws it: which packages may import which, and how
// long a hand-written function may be. It has no code of its own.
package archtest
