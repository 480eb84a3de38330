package store_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/connlog/connlog/store"
)

// The embedded engine's inserts are encoded by the store (Native), a
// ClickHouse server's through clickhouse-go's batch API: the same batch
// must leave the same rows, every column, both ways.
func TestNativeInsertsStoreWhatTheBatchAPIStores(t *testing.T) {
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	hits := []store.Hit{
		hit("203.0.113.7", 51234, base, "GET", "/index.html", 10),
		hit("2001:db8::7", 40000, base.Add(2*time.Second), "POST", "/login", 11),
		hit("203.0.113.200", 1, base.Add(-30*time.Hour), "DELETE", "/item/3", 12), // another day
		hit("198.51.100.1", 2, base.Add(4*time.Second), "PROPFIND", "", 13),
	}
	hits[0].ShipperHost, hits[0].LogFile, hits[0].OptOut = "web1", "/var/log/nginx/access.log", true
	hits[1].ClientText, hits[1].RawRequest, hits[1].ForwardedFor = "unknown", "\x16\x03 raw", "198.51.100.9, 10.0.0.1"
	hits[2].PeerIP, hits[2].ServerAddr = netip.Addr{}, netip.Addr{} // absent: stored as ::
	hits[3].Site, hits[3].User, hits[3].TLSProtocol, hits[3].Has = "", "", "", 0
	hits[3].Upstream = strings.Repeat("é", 300) // a length of more than one varint byte
	quarantined := []store.Quarantined{{Source: store.Source{Topic: "nginx", Partition: 1, Offset: 14}, Received: base, Reason: "bad line", Raw: []byte("junk\x00")}}
	dump := func(native bool) map[string]string {
		st := openStore(t)
		store.SetNativeInserts(st, native)
		if err := st.Write(t.Context(), store.Batch{Hits: hits, Quarantine: quarantined}); err != nil {
			t.Fatalf("native %v: %v", native, err)
		}
		d := st.Databases()
		out := map[string]string{}
		for _, table := range []string{d.Access + ".access_log", d.Connections + ".connection_records", d.Ops + ".quarantine"} {
			rows, err := st.Conn().Query(t.Context(), "SELECT toString(tuple(*)) FROM "+table+" ORDER BY kafka_offset")
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			n := 0
			for rows.Next() {
				var row string
				if err := rows.Scan(&row); err != nil {
					t.Fatal(err)
				}
				n++
				b.WriteString(row + "\n")
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if n == 0 {
				t.Fatalf("native %v: no rows in %s", native, table)
			}
			out[strings.SplitN(table, ".", 2)[1]] = b.String()
		}
		return out
	}
	native, batch := dump(true), dump(false)
	for table, want := range batch {
		if native[table] != want {
			t.Errorf("%s differs:\nnative %s\nbatch  %s", table, native[table], want)
		}
	}
}
