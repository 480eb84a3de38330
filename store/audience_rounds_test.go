package store_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/connlog/connlog/anonymize"
	"github.com/connlog/connlog/store"
)

// roundAudience is the audience of three batches of one site over two month
// partitions (this hour and one 35 days before), 300 visitors each with an
// exact count.
func roundAudience() []store.Batch {
	now := time.Now().UTC().Truncate(time.Hour)
	hours := []time.Time{now.Add(-35 * 24 * time.Hour), now.Add(-35*24*time.Hour + time.Hour), now}
	bs := make([]store.Batch, 3)
	for b := range bs {
		bs[b].ID = "logs/" + strconv.Itoa(b) + "/0-99"
		for i := range 100 {
			bs[b].Audience = append(bs[b].Audience, anonymize.Audience{
				Site: "round.example", Time: hours[(b+i)%len(hours)], Path: fmt.Sprintf("/p/%d", i%7),
				Country: "FR", Browser: []string{"Firefox", "Chrome"}[i%2], OS: "Linux", Device: "desktop",
				ReferrerDomain: "(direct)", StatusClass: "2xx", Visitor: uint64(b*1000+i%60+1) * 0x9E3779B97F4A7C15,
			})
		}
	}
	return bs
}

// statsDump is every cell of the site in both statistics tables: dimension,
// bucket, key, hits and distinct visitors.
func statsDump(t *testing.T, st *store.Store, site string) []string {
	t.Helper()
	db := st.Databases().Stats
	var out []string
	for _, q := range []string{
		"SELECT 'hourly', dim, toString(hour), key, sum(hits), uniqCombined64Merge(visitors) FROM " + db + ".audience_hourly WHERE site = '" + site + "' GROUP BY dim, hour, key ORDER BY ALL",
		"SELECT 'daily', dim, toString(day), key, sum(hits), uniqCombined64Merge(visitors) FROM " + db + ".audience_daily WHERE site = '" + site + "' GROUP BY dim, day, key ORDER BY ALL",
	} {
		rows, err := st.Conn().Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table, dim, bucket, key string
			var hits, visitors uint64
			if err := rows.Scan(&table, &dim, &bucket, &key, &hits, &visitors); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s %s %d %d", table, dim, bucket, key, hits, visitors))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

func sameDump(t *testing.T, step string, got, want []string) {
	t.Helper()
	if len(want) < 20 {
		t.Fatalf("reference holds only %d cells", len(want))
	}
	if fmt.Sprint(got) == fmt.Sprint(want) {
		return
	}
	t.Errorf("%s: %d cells, want %d", step, len(got), len(want))
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("  first difference: got %q, want %q", g, w)
			return
		}
	}
}

func rebuildAll(t *testing.T, st *store.Store, bs []store.Batch) {
	t.Helper()
	for _, b := range bs {
		b.Rebuilt = true
		if err := st.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// A write round inserts the audience of its batches at once, under the
// round's token. Whatever part of it a crash let through, rebuilding its
// batches alone must leave the statistics as if each batch had been counted
// once: the batches' marker cells tell them what is held, table by table
// and month by month.
func TestRoundStatisticsCountEachBatchOnce(t *testing.T) {
	ref := openStore(t)
	for _, b := range roundAudience() {
		if err := ref.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	want := statsDump(t, ref, "round.example")

	t.Run("round stored, retried, then rebuilt", func(t *testing.T) {
		st := openStore(t)
		bs := roundAudience()
		for range 2 {
			if err := st.Write(t.Context(), bs...); err != nil {
				t.Fatal(err)
			}
			sameDump(t, "round", statsDump(t, st, "round.example"), want)
		}
		rebuildAll(t, st, roundAudience())
		sameDump(t, "rebuilt after the round", statsDump(t, st, "round.example"), want)
	})

	t.Run("one table short of a month", func(t *testing.T) {
		// A crash between the views' writes: the round's older month is
		// missing from the daily table, its newer one from the hourly table.
		st := openStore(t)
		bs := roundAudience()
		if err := st.Write(t.Context(), bs...); err != nil {
			t.Fatal(err)
		}
		db := st.Databases().Stats
		older, newer := bs[0].Audience[0].Time, bs[0].Audience[2].Time
		exec(t, st, "ALTER TABLE "+db+".audience_daily DROP PARTITION "+older.Format("200601"))
		exec(t, st, "ALTER TABLE "+db+".audience_hourly DROP PARTITION "+newer.Format("200601"))
		if got := statsDump(t, st, "round.example"); fmt.Sprint(got) == fmt.Sprint(want) {
			t.Fatal("dropping the partitions changed nothing")
		}
		for range 2 { // and a crash during the rebuild
			rebuildAll(t, st, roundAudience())
			sameDump(t, "rebuilt", statsDump(t, st, "round.example"), want)
		}
	})

	t.Run("nothing stored", func(t *testing.T) {
		st := openStore(t)
		for range 2 {
			rebuildAll(t, st, roundAudience())
			sameDump(t, "rebuilt", statsDump(t, st, "round.example"), want)
		}
	})

	t.Run("stored alone by an earlier version", func(t *testing.T) {
		st := openStore(t)
		for _, b := range roundAudience() {
			if err := store.WriteAudienceUnmarked(t.Context(), st, b.ID, b.Audience); err != nil {
				t.Fatal(err)
			}
		}
		rebuildAll(t, st, roundAudience())
		sameDump(t, "rebuilt", statsDump(t, st, "round.example"), want)
	})
}
