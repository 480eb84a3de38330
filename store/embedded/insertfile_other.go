//go:build !linux

package embedded

import "os"

// insertFile returns a file of the data directory to hold an INSERT's data
// and its path (see the Linux version).
func (e *Engine) insertFile() (f *os.File, path string, remove func(), err error) {
	return e.dirInsertFile()
}
