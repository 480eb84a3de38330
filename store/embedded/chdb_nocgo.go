//go:build !cgo

package embedded

import "errors"

// errNoCgo explains why a pure-Go build cannot run the embedded engine.
var errNoCgo = errors.New("embedded ClickHouse needs a cgo build of connlog (CGO_ENABLED=1 and a C compiler); configure a ClickHouse server instead")

type chdb struct{}

func loadCHDB(string, []string) (*chdb, error) { return nil, errNoCgo }

func (*chdb) version() string { return "" }
func (*chdb) close()          {}

func (*chdb) query(string, string, []param, func([]byte) error) error { return errNoCgo }

type stream struct{}

func (*chdb) streamQuery(string, string, []param) (*stream, error) { return nil, errNoCgo }
func (*stream) next(func([]byte) error) (bool, error)              { return false, errNoCgo }
func (*stream) cancel()                                            {}
func (*stream) close()                                             {}

type inserter struct{}

func (*chdb) insert(string, string, []param) (*inserter, error) { return nil, errNoCgo }
func (*inserter) write([]byte) error                            { return errNoCgo }
func (*inserter) done() (uint64, error)                         { return 0, errNoCgo }
func (*inserter) cancel()                                       {}
