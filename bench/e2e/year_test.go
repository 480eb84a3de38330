package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestSplitYearKeepsTheRequestsPerDayOfBothTables(t *testing.T) {
	for _, tc := range []struct {
		name         string
		total        int64
		days         int
		conn, access int64
		aDays        int
	}{
		{"a year: access log over its last 180 days", 545_000_000, 365, 365_000_000, 180_000_000, 180},
		{"a billion rows", 1_000_000_000, 365, 669_724_770, 330_275_230, 180},
		{"shorter than the access lifetime: half each", 100, 60, 50, 50, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, access, aDays := splitYear(tc.total, tc.days)
			if conn != tc.conn || access != tc.access || aDays != tc.aDays {
				t.Fatalf("splitYear(%d, %d) = %d, %d, %d; want %d, %d, %d", tc.total, tc.days, conn, access, aDays, tc.conn, tc.access, tc.aDays)
			}
			if conn+access != tc.total {
				t.Errorf("conn + access = %d, want %d", conn+access, tc.total)
			}
			// same requests per day, to within a row
			if d := float64(conn)/float64(tc.days) - float64(access)/float64(aDays); d > 1 || d < -1 {
				t.Errorf("rows per day differ by %.2f", d)
			}
		})
	}
}

func TestMinuteOfIsTheHalfOpenMinuteOfTheConnection(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 42, 59, 999_000_000, time.FixedZone("CET", 3600))
	from, to := minuteOf(at)
	if want := time.Date(2026, 3, 1, 9, 42, 0, 0, time.UTC); !from.Equal(want) || from.Location() != time.UTC {
		t.Errorf("from = %s, want %s", from, want)
	}
	if to.Sub(from) != time.Minute || !at.Before(to) || at.Before(from) {
		t.Errorf("[%s, %s) does not hold %s", from, to, at)
	}
}

func TestParseConnTargetsUnmapsAndSkipsBadLines(t *testing.T) {
	got := parseConnTargets("::ffff:185.1.2.3\t40000\t1767225600000\n2a01:1::5\t1024\t1767225600123\nbad\t1\t2\n1.2.3.4\t70000\t5\n1.2.3.4\t8\n")
	if len(got) != 2 {
		t.Fatalf("got %d targets, want 2: %v", len(got), got)
	}
	if got[0].ip.String() != "185.1.2.3" || got[0].port != 40000 || !got[0].t.Equal(time.UnixMilli(1767225600000)) {
		t.Errorf("first target %+v", got[0])
	}
	if got[1].ip.String() != "2a01:1::5" || got[1].t.UnixMilli() != 1767225600123 {
		t.Errorf("second target %+v", got[1])
	}
}

func TestSearchParamsBindTheRangeOfTheNetwork(t *testing.T) {
	from := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	for _, tc := range []struct {
		network, lo, hi string
		port            uint16
	}{
		{"185.1.2.3", "::ffff:185.1.2.3", "::ffff:185.1.2.3", 40000},
		{"185.1.2.0/24", "::ffff:185.1.2.0", "::ffff:185.1.2.255", 0},
		{"2a01:1:2::/48", "2a01:1:2::", "2a01:1:2:ffff:ffff:ffff:ffff:ffff", 0},
	} {
		s := search{network: tc.network, from: from, to: from.Add(time.Minute), port: tc.port}
		p, err := s.params()
		if err != nil {
			t.Fatal(err)
		}
		if p.Get("param_lo") != tc.lo || p.Get("param_hi") != tc.hi {
			t.Errorf("%s: [%s, %s], want [%s, %s]", tc.network, p.Get("param_lo"), p.Get("param_hi"), tc.lo, tc.hi)
		}
		if p.Get("param_from") != "2026-01-02 03:04:00.000" || p.Get("param_to") != "2026-01-02 03:05:00.000" {
			t.Errorf("%s: window %s to %s", tc.network, p.Get("param_from"), p.Get("param_to"))
		}
		q := s.query()
		if (tc.port != 0) != p.Has("param_port") || (tc.port != 0) != q.Has("port") {
			t.Errorf("%s: port %d bound as %q, asked as %q", tc.network, tc.port, p.Get("param_port"), q.Get("port"))
		}
	}
	if _, err := (search{network: "nope"}).params(); err == nil {
		t.Error("a bad network gave parameters")
	}
}

func TestNet24IsTheSlash24OrTheSlash48(t *testing.T) {
	if got := net24(netip.MustParseAddr("185.1.2.3")); got != "185.1.2.0/24" {
		t.Errorf("IPv4: %s", got)
	}
	if got := net24(netip.MustParseAddr("2a01:1:2:3::9")); got != "2a01:1:2::/48" {
		t.Errorf("IPv6: %s", got)
	}
}

func TestConnSearchSQLIsTheStoresStatement(t *testing.T) {
	held, plain := connSearchSQL(true, true), connSearchSQL(true, false)
	if !strings.Contains(held, "held_records") || strings.Contains(plain, "held_records") {
		t.Error("held union where not asked, or missing where asked")
	}
	for _, s := range []string{held, plain} {
		if strings.Count(s, "client_port = {port:UInt16}") != strings.Count(s, "client_ip BETWEEN") {
			t.Errorf("the port is not in every WHERE: %s", s)
		}
		if !strings.HasSuffix(s, "ORDER BY client_ip, event_time, kafka_topic, kafka_partition, kafka_offset LIMIT 1001") {
			t.Errorf("order or limit: %s", s)
		}
	}
	if strings.Contains(connSearchSQL(false, true), "client_port") && strings.Contains(connSearchSQL(false, true), "{port") {
		t.Error("port filter without a port")
	}
}

func TestCondenseExplainKeepsTheIndexLines(t *testing.T) {
	in := `Expression ((Project names + Projection))
  Limit (preliminary LIMIT)
    Sorting (Sorting for ORDER BY)
      Expression ((Before ORDER BY + ))
        ReadFromMergeTree (connlog_connections.connection_records)
        Indexes:
          MinMax
            Keys:
              event_time
            Condition: and((event_time in (-Inf, '1767225660']), (event_time in ['1767225600', +Inf)))
            Parts: 1/730
            Granules: 67/178000
          PrimaryKey
            Keys:
              client_ip
            Parts: 1/1
            Granules: 1/67
            Search Algorithm: generic exclusion search`
	got := condenseExplain(in)
	for _, want := range []string{"MinMax", "PrimaryKey", "ReadFromMergeTree (connlog_connections.connection_records)", "Parts: 1/730", "Granules: 1/67", "Search Algorithm: generic exclusion search", "Condition: and("} {
		if !strings.Contains(got, want) {
			t.Errorf("lost %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Sorting") || strings.Contains(got, "Expression") {
		t.Errorf("kept plan lines:\n%s", got)
	}
}

func TestVariantDDLChangesOneThing(t *testing.T) {
	create := "CREATE TABLE connlog_connections.connection_records\n(\n    `event_time` DateTime64(3, 'UTC')\n)\nENGINE = MergeTree\nPARTITION BY toDate(event_time)\nORDER BY (client_ip, event_time, client_port)\nSETTINGS ttl_only_drop_parts = 1, index_granularity = 8192"
	for _, v := range copyVariants {
		ddl, err := variantDDL(create, v.table, v.from, v.to)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if !strings.HasPrefix(ddl, "CREATE TABLE "+v.table+"\n") || strings.Contains(ddl, "connlog_connections") {
			t.Errorf("%s: not a copy: %s", v.name, ddl)
		}
		if v.from != "" && (!strings.Contains(ddl, v.to) || (!strings.Contains(v.to, v.from) && strings.Contains(ddl, v.from))) {
			t.Errorf("%s: %q not replaced by %q: %s", v.name, v.from, v.to, ddl)
		}
	}
	if _, err := variantDDL(strings.Replace(create, "index_granularity = 8192", "index_granularity = 4096", 1), "x.y", "index_granularity = 8192", "index_granularity = 1024"); err == nil {
		t.Error("a DDL without the text to change was copied unchanged")
	}
	if _, err := variantDDL("CREATE TABLE other.t (x UInt8)", "x.y", "", ""); err == nil {
		t.Error("another table's DDL accepted")
	}
}

func TestParseEventsReadsTheListedCounters(t *testing.T) {
	got := parseEvents("Query\t415\nSelectedParts\t1938\nSelectedMarks\t1939\nSelectedRows\t11218189\nSelectedBytes\t258988531\nReadCompressedBytes\t36130341\n")
	want := readStats{Parts: 1938, Marks: 1939, Rows: 11218189, Bytes: 258988531, Compressed: 36130341}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if d := want.sub(parseEvents("SelectedParts\t1572\nSelectedRows\t9164272")); d.Parts != 366 || d.Rows != 2053917 || d.Marks != 1939 {
		t.Errorf("delta %+v", d)
	}
	if m := want.add(want).div(2); m != want {
		t.Errorf("mean of twice the same: %+v", m)
	}
}

func TestCondenseExplainReadsTheTreeDrawing(t *testing.T) {
	in := "JoinLazyColumnsStep\n├──Limit (preliminary LIMIT)\n│  └──Sorting (Sorting for ORDER BY)\n│     └──ReadFromMergeTree (connlog_connections.connection_records)\n│           Read type: InOrder\n│           Indexes:\n│             Min-Max\n│               Parts: 366/511\n│             PrimaryKey\n│               Granules: 366/366\n└──LazilyReadFromMergeTree\n      Lazily read columns: ingested_at, client_port"
	got := condenseExplain(in)
	for _, want := range []string{"JoinLazyColumnsStep", "ReadFromMergeTree (connlog_connections.connection_records)", "Read type: InOrder", "Min-Max", "Parts: 366/511", "PrimaryKey", "Granules: 366/366", "Lazily read columns: ingested_at, client_port"} {
		if !strings.Contains(got, want) {
			t.Errorf("lost %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "│") || strings.Contains(got, "Sorting") {
		t.Errorf("kept the drawing or plan lines:\n%s", got)
	}
}
