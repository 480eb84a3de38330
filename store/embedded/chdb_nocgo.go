//go:build !cgo

package embedded

type chdb struct{}

// cgoBuild tells Open whether chDB can be loaded at all.
const cgoBuild = false

func loadCHDB(string, []string) (*chdb, error) { return nil, ErrNeedsCgo }

func (*chdb) version() string { return "" }
func (*chdb) close()          {}

func (*chdb) query(string, string, []param, func([]byte) error) error { return ErrNeedsCgo }

type stream struct{}

func (*chdb) streamQuery(string, string, []param) (*stream, error) { return nil, ErrNeedsCgo }
func (*stream) next(func([]byte) error) (bool, error)              { return false, ErrNeedsCgo }
func (*stream) cancel()                                            {}
func (*stream) close()                                             {}
