package legal

import (
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/connlog/connlog/store/internal/chsql"
)

// Register is the legal register of a store: the requisitions received and
// what was answered, and the legal holds with their frozen copies of
// connection records. It is safe for concurrent use.
type Register struct {
	conn    driver.Conn
	db      chsql.Databases
	cluster string
	// recordColumns are the columns of connection_records, which a hold
	// copies as they are.
	recordColumns string
	logger        *slog.Logger
}

// NewRegister returns the register of the databases db on conn; cluster is
// the ClickHouse cluster ("" for none), recordColumns the columns of
// connection_records, comma-separated.
func NewRegister(conn driver.Conn, db chsql.Databases, cluster, recordColumns string, logger *slog.Logger) *Register {
	return &Register{conn: conn, db: db, cluster: cluster, recordColumns: recordColumns, logger: logger}
}

func (s *Register) onCluster() string { return chsql.OnCluster(s.cluster) }
