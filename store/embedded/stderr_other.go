//go:build !unix

package embedded

// captureStderr is a no-op where chDB does not run anyway.
func captureStderr() (func() []byte, error) { return func() []byte { return nil }, nil }
