package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/connlog/connlog/export"
	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal"
)

// exportColumns are the columns of a requisition package: the connection
// record as the law defines it, and where it came from.
var exportColumns = []string{
	"event_time", "client_ip", "client_port", "server_addr", "server_port", "site", "protocol", "tls_protocol",
	"operation", "path", "user", "status", "kafka_topic", "kafka_partition", "kafka_offset",
}

// errTooManyRecords stops a requisition run that selects too much.
var errTooManyRecords = errors.New("too many records")

// buildExport runs the selectors of req over the connection records (each
// limited to who's sites) and builds the signed package. The package is
// kept byte for byte by the caller, so a download gives exactly the bytes
// whose SHA-256 is in the register and the audit trail.
func (s *Server) buildExport(reqCtx context.Context, req *legal.Requisition, who *principal) (pkg []byte, sum string, rows int, err error) {
	in := export.Input{
		Requisition: requisitionForManifest(req),
		Columns:     exportColumns,
		Generated:   s.now().UTC(),
		Software:    s.software,
		Queries:     []export.Query{},
	}
	for i, sel := range req.Selectors {
		if i == 0 || sel.From.Before(in.From) {
			in.From = sel.From
		}
		if i == 0 || sel.To.After(in.To) {
			in.To = sel.To
		}
		q := store.ConnectionQuery{
			Network: sel.Network, From: sel.From, To: sel.To, Site: sel.Site, Sites: who.sites, Port: sel.Port,
			Limit: maxExportRows + 1 - len(in.Rows), Timeout: s.cfg.QueryTimeout,
		}
		ctx, cancel := context.WithTimeout(reqCtx, s.cfg.QueryTimeout)
		stmt, params, err := s.requisitions.RequisitionRecords(ctx, q, func(r *store.ConnectionRecord) error {
			if len(in.Rows) >= maxExportRows {
				return errTooManyRecords
			}
			in.Rows = append(in.Rows, []any{
				r.EventTime, addrString(r.ClientIP), r.ClientPort, addrString(r.ServerAddr), r.ServerPort, r.Site, r.Protocol,
				r.TLSProtocol, r.Operation.String(), r.Path, r.User, r.Status, r.Source.Topic, r.Source.Partition, r.Source.Offset,
			})
			return nil
		})
		cancel()
		if errors.Is(err, errTooManyRecords) || err == nil && len(in.Rows) > maxExportRows {
			return nil, "", 0, errorf(CodeBadRequest, "the selectors match more than "+strconv.Itoa(maxExportRows)+" records; split the requisition")
		}
		if err != nil {
			return nil, "", 0, storeError(reqCtx, err)
		}
		in.Queries = append(in.Queries, export.Query{Text: stmt, Parameters: params})
	}
	pkg, sum, err = export.Build(in, s.signer, integrity.KeyID(s.signer.Public()))
	if err != nil {
		return nil, "", 0, fmt.Errorf("build export package: %w", err)
	}
	return pkg, sum, len(in.Rows), nil
}

// requisitionForManifest is the register entry as the manifest states it:
// what was asked, by whom, and who entered it; not its later history.
func requisitionForManifest(req *legal.Requisition) legal.Requisition {
	r := *req
	r.Runs, r.Answer = nil, nil
	return r
}

// fileBody is a data handler's answer that is a file, not JSON: the guard
// audits it like any answer, then sends the bytes unchanged.
type fileBody struct {
	contentType string
	filename    string
	sha256      string
	data        []byte
}

// write sends f as the response.
func (f *fileBody) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Disposition", `attachment; filename="`+f.filename+`"`)
	h.Set("Content-Length", strconv.Itoa(len(f.data)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if f.sha256 != "" {
		h.Set("X-Export-SHA256", f.sha256)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.data)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
