package anonymize

import (
	"fmt"
	"net/netip"

	lru "github.com/hashicorp/golang-lru/v2"
	geoip2 "github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"
)

// place is what the statistics keep of a location.
type place struct {
	country, region, city string
}

// geoDB looks addresses up in a MaxMind-format database. It decodes each
// database record once, with geoip2-golang's record type, and caches the
// result by the record's offset in the file: many networks share a record,
// so the cache stays small and never holds an address. Safe for concurrent
// use.
type geoDB struct {
	r     *maxminddb.Reader
	level GeoLevel
	cache *lru.Cache[uintptr, place]
}

func openGeo(path string, level GeoLevel, size int) (*geoDB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geolocation database: %w", err)
	}
	c, err := lru.New[uintptr, place](size)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return &geoDB{r: r, level: level, cache: c}, nil
}

// lookup locates addr. Unknown addresses, private ranges and lookup errors
// give the zero place (country "").
func (g *geoDB) lookup(addr netip.Addr) place {
	if g == nil || !addr.IsValid() {
		return place{}
	}
	res := g.r.Lookup(addr.Unmap().WithZone(""))
	if !res.Found() {
		return place{}
	}
	off := res.Offset()
	if p, ok := g.cache.Get(off); ok {
		return p
	}
	var rec geoip2.City // a superset of geoip2.Country: fits both kinds of database
	if err := res.Decode(&rec); err != nil {
		return place{}
	}
	p := place{country: rec.Country.ISOCode}
	if p.country == "" {
		p.country = rec.RegisteredCountry.ISOCode
	}
	if g.level >= GeoRegion && len(rec.Subdivisions) > 0 {
		p.region = rec.Subdivisions[0].ISOCode
	}
	if g.level >= GeoCity {
		p.city = rec.City.Names.English
	}
	g.cache.Add(off, p)
	return p
}

func (g *geoDB) close() error {
	if g == nil {
		return nil
	}
	return g.r.Close()
}
