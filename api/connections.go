package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/connlog/connlog/internal/csvcell"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/audit"
)

// Defaults of [SearchConfig].
const (
	DefaultConnectionsMaxWindow = 366 * 24 * time.Hour
	DefaultAuditMaxWindow       = 3*366*24*time.Hour + 24*time.Hour
	DefaultMaxExportRows        = 10_000_000
	DefaultExportTimeout        = 10 * time.Minute
)

// SearchConfig bounds the searches beyond the access log's: connection
// records, audit trail and exports. Zero fields take the Default* values.
type SearchConfig struct {
	// ConnectionsMaxWindow bounds the time window of a connection-record
	// search: requisitions look back up to a year. Default: 366 days.
	ConnectionsMaxWindow time.Duration `yaml:"connections_max_window"`
	// AuditMaxWindow bounds the time window of an audit search. Default:
	// 3 years and a day (the audit trail's lifetime).
	AuditMaxWindow time.Duration `yaml:"audit_max_window"`
	// MaxExportRows bounds a streamed export (NDJSON, CSV); the trailer
	// X-Connlog-Truncated says when it was reached. Default: 10,000,000.
	MaxExportRows int `yaml:"max_export_rows"`
	// ExportTimeout bounds a streamed export, query and transfer.
	// Default: 10 minutes.
	ExportTimeout time.Duration `yaml:"export_timeout"`
}

func (c SearchConfig) withDefaults() SearchConfig {
	if c.ConnectionsMaxWindow == 0 {
		c.ConnectionsMaxWindow = DefaultConnectionsMaxWindow
	}
	if c.AuditMaxWindow == 0 {
		c.AuditMaxWindow = DefaultAuditMaxWindow
	}
	if c.MaxExportRows == 0 {
		c.MaxExportRows = DefaultMaxExportRows
	}
	if c.ExportTimeout == 0 {
		c.ExportTimeout = DefaultExportTimeout
	}
	return c
}

func (c SearchConfig) validate() []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"connections_max_window", c.ConnectionsMaxWindow}, {"audit_max_window", c.AuditMaxWindow}, {"export_timeout", c.ExportTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("api search %s %s: must be positive", d.name, d.v))
		}
	}
	if c.MaxExportRows < 0 {
		errs = append(errs, fmt.Errorf("api search max_export_rows %d: must be positive", c.MaxExportRows))
	}
	return errs
}

// searchStore is what the search endpoints need from storage beyond
// SearchAccess; *store.Store satisfies it.
type searchStore interface {
	// EachAccess streams the access-log rows matching q.
	EachAccess(ctx context.Context, q store.AccessQuery, fn func(*store.Hit) error) error
	// SearchConnections returns the connection records matching q.
	SearchConnections(ctx context.Context, q store.ConnectionQuery) ([]store.ConnectionRecord, error)
	// EachConnection streams the connection records matching q.
	EachConnection(ctx context.Context, q store.ConnectionQuery, fn func(*store.ConnectionRecord) error) error
	// SummarizeIP summarises one address over a window.
	SummarizeIP(ctx context.Context, q store.AccessQuery) (store.IPSummary, error)
	// SearchAudit searches the audit trail.
	SearchAudit(ctx context.Context, q audit.Query) ([]audit.Record, error)
	// SubjectConsultations lists the consultations that touched an address.
	SubjectConsultations(ctx context.Context, q audit.SubjectQuery) ([]audit.Consultation, error)
}

// connectionParams are the query parameters /v1/connections accepts.
var connectionParams = paramSet{endpoint: "/v1/connections", paged: true, filters: []string{
	"ip", "from", "to", "site", "port", "path_prefix", "operation", "status", "user",
}}

// connectionsResponse is the body of a successful /v1/connections page.
type connectionsResponse struct {
	Rows []connectionRow `json:"rows"`
	pageEnd
}

// connectionRow is one connection record as the API shows it.
type connectionRow struct {
	Time        string `json:"time"`
	ClientIP    string `json:"client_ip"`
	ClientPort  uint16 `json:"client_port,omitempty"`
	ServerAddr  string `json:"server_addr,omitempty"`
	ServerPort  uint16 `json:"server_port,omitempty"`
	Site        string `json:"site,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	TLSProtocol string `json:"tls_protocol,omitempty"`
	Operation   string `json:"operation"`
	Path        string `json:"path,omitempty"`
	User        string `json:"user,omitempty"`
	Status      uint16 `json:"status"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
}

func newConnectionRow(r *store.ConnectionRecord) connectionRow {
	return connectionRow{
		Time:        r.EventTime.UTC().Format(timeFormat),
		ClientIP:    addrString(r.ClientIP),
		ClientPort:  r.ClientPort,
		ServerAddr:  addrString(r.ServerAddr),
		ServerPort:  r.ServerPort,
		Site:        r.Site,
		Protocol:    r.Protocol,
		TLSProtocol: r.TLSProtocol,
		Operation:   r.Operation.String(),
		Path:        r.Path,
		User:        r.User,
		Status:      r.Status,
		Topic:       r.Source.Topic,
		Partition:   r.Source.Partition,
		Offset:      r.Source.Offset,
	}
}

// connectionHeader is the CSV header of connection-record exports.
var connectionHeader = []string{"time", "client_ip", "client_port", "server_addr", "server_port", "site", "protocol",
	"tls_protocol", "operation", "path", "user", "status", "topic", "partition", "offset"}

// connectionCSV is a connection record of a CSV export: connectionRow's
// fields, in connectionHeader's order, appended from the stored record.
type connectionCSV store.ConnectionRecord

func (c *connectionCSV) appendCSV(r *csvcell.Record) {
	csvTime(r, c.EventTime)
	csvAddr(r, c.ClientIP)
	csvPort(r, c.ClientPort)
	csvAddr(r, c.ServerAddr)
	csvPort(r, c.ServerPort)
	r.Field(c.Site)
	r.Field(c.Protocol)
	r.Field(c.TLSProtocol)
	r.Field(c.Operation.String())
	r.Field(c.Path)
	r.Field(c.User)
	csvInt(r, int64(c.Status))
	r.Field(c.Source.Topic)
	csvInt(r, int64(c.Source.Partition))
	csvInt(r, c.Source.Offset)
}

// connections answers GET /v1/connections (role officer): a page of
// connection records, or the whole result as an NDJSON or CSV stream.
func (s *Server) connections(r *http.Request, c *call) (any, error) {
	params := r.URL.Query()
	c.filters = connectionParams.raw(params)
	format := streamFormat(r)
	q, err := s.parseConnections(params)
	if err != nil {
		return nil, err
	}
	f := map[string]any{
		"ip":          q.Network.String(),
		"from":        q.From.Format(time.RFC3339Nano),
		"to":          q.To.Format(time.RFC3339Nano),
		"site":        q.Site,
		"path_prefix": q.PathPrefix,
		"status":      params.Get("status"),
		"user":        q.User,
	}
	if q.Port != 0 {
		f["port"] = q.Port
	}
	if q.Operation != store.OpUnknown {
		f["operation"] = q.Operation.String()
	}
	pg, err := openPage[store.Cursor](s, c, params, "/v1/connections", f, format)
	if err != nil {
		return nil, err
	}
	if err := searchSite(c.who, q.Site); err != nil {
		return nil, err
	}
	q.Limit, q.After, q.Sites = pg.limit, pg.after, c.who.Sites

	if format != "" {
		if q.Limit == 0 {
			q.Limit = s.cfg.Search.MaxExportRows + 1
		}
		q.Timeout = s.cfg.Search.ExportTimeout
		return &stream{format: format, header: connectionHeader, run: func(ctx context.Context, emit func(streamRow) error) error {
			var row connectionRow
			return pipelined(ctx, func(ctx context.Context, fn func(*store.ConnectionRecord) error) error {
				return s.store.EachConnection(ctx, q, fn)
			}, func(r *store.ConnectionRecord) error {
				if format == mediaCSV {
					return emit((*connectionCSV)(r))
				}
				row = newConnectionRow(r)
				return emit(&row)
			})
		}}, nil
	}
	q.Limit = pg.fetch()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	recs, err := s.store.SearchConnections(ctx, q)
	if err != nil {
		s.logger.Warn("search connection records", "err", err)
		return nil, storeError(r.Context(), err)
	}
	recs, end := cut(pg, recs, (*store.ConnectionRecord).Cursor)
	resp := connectionsResponse{Rows: make([]connectionRow, 0, len(recs)), pageEnd: end}
	for i := range recs {
		resp.Rows = append(resp.Rows, newConnectionRow(&recs[i]))
	}
	c.rows = resp.Count
	return resp, nil
}

// parseConnections checks the filters of /v1/connections; limit and cursor
// are read by openPage.
func (s *Server) parseConnections(params url.Values) (store.ConnectionQuery, error) {
	var q store.ConnectionQuery
	for _, name := range []string{"method", "user_agent"} {
		if params.Has(name) {
			return q, errorf(CodeBadRequest, fmt.Sprintf("connection records do not keep %s; filter on operation (read, create, modify, delete) instead", name))
		}
	}
	if err := connectionParams.check(params); err != nil {
		return q, err
	}
	var err error
	if q.Network, q.From, q.To, err = s.parseWindow(params, s.cfg.Search.ConnectionsMaxWindow); err != nil {
		return q, err
	}
	if q.Site, err = parseSite(params.Get("site")); err != nil {
		return q, err
	}
	if q.Port, err = parsePort(params.Get("port")); err != nil {
		return q, err
	}
	if q.PathPrefix, err = parseText("path_prefix", params.Get("path_prefix"), maxPathPrefix); err != nil {
		return q, err
	}
	if v := params.Get("operation"); v != "" {
		if q.Operation = store.ParseOperation(v); q.Operation == store.OpUnknown {
			return q, errorf(CodeBadRequest, "operation must be read, create, modify or delete")
		}
	}
	if q.StatusMin, q.StatusMax, err = parseStatus(params.Get("status")); err != nil {
		return q, err
	}
	q.User, err = parseText("user", params.Get("user"), maxUser)
	return q, err
}
