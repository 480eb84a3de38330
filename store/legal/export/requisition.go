package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/connlog/connlog/store"
	"github.com/connlog/connlog/store/integrity"
	"github.com/connlog/connlog/store/legal"
)

// Store is what running a requisition needs of storage; *store.Store
// satisfies it.
type Store interface {
	// RequisitionRecords runs q and returns the statement and parameters it ran.
	RequisitionRecords(ctx context.Context, q store.ConnectionQuery, fn func(r *store.ConnectionRecord) error) (string, map[string]string, error)
	// RecordRequisitionExport keeps a package and records the run.
	RecordRequisitionExport(ctx context.Context, id, by string, at time.Time, sum string, rows uint64, pkg []byte) error
	// RequisitionExport returns a kept package by its SHA-256, or an error
	// wrapping legal.ErrNoRequisition once it is no longer kept.
	RequisitionExport(ctx context.Context, id, sum string) ([]byte, error)
}

// MaxRecords bounds one package; a requisition that selects more must be
// split (the package is built in memory and kept whole).
const MaxRecords = 1_000_000

// Errors of [Packager]; callers branch on them with errors.Is.
var (
	// ErrTooManyRecords: the selectors match more than MaxRecords records.
	ErrTooManyRecords = errors.New("too many records")
	// ErrNotRun: the requisition has no run, so no package.
	ErrNotRun = errors.New("requisition not run yet")
	// ErrNoSuchPackage: no run of the requisition has the SHA-256 asked for.
	ErrNoSuchPackage = errors.New("no package with that SHA-256")
)

// StoreError is a failure of the store while running a requisition or
// reading its package. It carries the store's error as is (its text too),
// so that the caller can tell a store that cannot answer from a bug.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return e.Err.Error() }

// Unwrap returns the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// Columns are the columns of a requisition package: the connection record
// as the law defines it, and where it came from.
var Columns = []string{
	"event_time", "client_ip", "client_port", "server_addr", "server_port", "site", "protocol", "tls_protocol",
	"operation", "path", "user", "status", "kafka_topic", "kafka_partition", "kafka_offset",
}

// Packager runs requisitions into signed packages and keeps them: it
// selects the records each selector names, builds the package ([Build]),
// keeps it byte for byte with the run in the register, and hands a kept
// package back unchanged, so that a download gives exactly the bytes whose
// SHA-256 is in the register and the audit trail. Create it with
// [NewPackager]; it is safe for concurrent use.
type Packager struct {
	st       Store
	signer   *integrity.Signer
	software string
	timeout  time.Duration
	now      func() time.Time
}

// NewPackager returns a Packager over st that signs with signer (nil: runs
// fail) and names software (the connlog version) in its manifests. Each
// store call is bounded by timeout; now is the clock of the generation and
// run times.
func NewPackager(st Store, signer *integrity.Signer, software string, timeout time.Duration, now func() time.Time) *Packager {
	return &Packager{st: st, signer: signer, software: software, timeout: timeout, now: now}
}

// Run is what a requisition run produced.
type Run struct {
	// SHA256 is the hex SHA-256 of the package, as the register keeps it.
	SHA256 string
	// Rows is the number of records in the package.
	Rows int
	// KeyID names the key that signed it.
	KeyID string
}

// Run selects the records of req's selectors (each limited to sites, when
// not empty), builds the signed package, keeps it and records the run by
// by. Errors of the store come as a *StoreError; ErrTooManyRecords when
// the selectors match more than MaxRecords.
func (p *Packager) Run(ctx context.Context, req *legal.Requisition, by string, sites []string) (Run, error) {
	if p.signer == nil {
		return Run{}, errors.New("requisitions served without a signing key")
	}
	pkg, sum, rows, err := p.build(ctx, req, sites)
	if err != nil {
		return Run{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.st.RecordRequisitionExport(sctx, req.ID, by, p.now().UTC(), sum, uint64(rows), pkg); err != nil {
		return Run{}, &StoreError{err}
	}
	return Run{SHA256: sum, Rows: rows, KeyID: p.KeyID()}, nil
}

// KeyID names the key packages are signed with, "" if none.
func (p *Packager) KeyID() string {
	if p.signer == nil {
		return ""
	}
	return integrity.KeyID(p.signer.Public())
}

// build runs the selectors of req over the connection records and builds
// the signed package.
func (p *Packager) build(reqCtx context.Context, req *legal.Requisition, sites []string) (pkg []byte, sum string, rows int, err error) {
	in := Input{
		Requisition: forManifest(req),
		Columns:     Columns,
		Generated:   p.now().UTC(),
		Software:    p.software,
		Queries:     []Query{},
	}
	for i, sel := range req.Selectors {
		if i == 0 || sel.From.Before(in.From) {
			in.From = sel.From
		}
		if i == 0 || sel.To.After(in.To) {
			in.To = sel.To
		}
		q := store.ConnectionQuery{
			Network: sel.Network, From: sel.From, To: sel.To, Site: sel.Site, Sites: sites, Port: sel.Port,
			Limit: MaxRecords + 1 - len(in.Rows), Timeout: p.timeout,
		}
		ctx, cancel := context.WithTimeout(reqCtx, p.timeout)
		stmt, params, err := p.st.RequisitionRecords(ctx, q, func(r *store.ConnectionRecord) error {
			if len(in.Rows) >= MaxRecords {
				return ErrTooManyRecords
			}
			in.Rows = append(in.Rows, []any{
				r.EventTime, addrString(r.ClientIP), r.ClientPort, addrString(r.ServerAddr), r.ServerPort, r.Site, r.Protocol,
				r.TLSProtocol, r.Operation.String(), r.Path, r.User, r.Status, r.Source.Topic, r.Source.Partition, r.Source.Offset,
			})
			return nil
		})
		cancel()
		if errors.Is(err, ErrTooManyRecords) || err == nil && len(in.Rows) > MaxRecords {
			return nil, "", 0, ErrTooManyRecords
		}
		if err != nil {
			return nil, "", 0, &StoreError{err}
		}
		in.Queries = append(in.Queries, Query{Text: stmt, Parameters: params})
	}
	pkg, sum, err = Build(in, p.signer, p.KeyID())
	if err != nil {
		return nil, "", 0, fmt.Errorf("build export package: %w", err)
	}
	return pkg, sum, len(in.Rows), nil
}

// forManifest is the register entry as the manifest states it: what was
// asked, by whom, and who entered it; not its later history.
func forManifest(req *legal.Requisition) legal.Requisition {
	r := *req
	r.Runs, r.Answer = nil, nil
	return r
}

// Kept returns the package of req's latest run, or of the run whose
// SHA-256 is sum if not empty, with that run, after checking that the kept
// bytes still hash to what the register says. Errors: ErrNotRun,
// ErrNoSuchPackage, one wrapping legal.ErrNoRequisition once the package is
// no longer kept (its SHA-256 stays in the register), a *StoreError.
func (p *Packager) Kept(ctx context.Context, req *legal.Requisition, sum string) ([]byte, legal.RequisitionRun, error) {
	var run *legal.RequisitionRun
	for i := range req.Runs {
		if sum == "" || req.Runs[i].ExportSHA256 == sum {
			run = &req.Runs[i]
		}
	}
	if run == nil {
		if sum != "" {
			return nil, legal.RequisitionRun{}, ErrNoSuchPackage
		}
		return nil, legal.RequisitionRun{}, ErrNotRun
	}
	sctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	pkg, err := p.st.RequisitionExport(sctx, req.ID, run.ExportSHA256)
	if err != nil {
		return nil, *run, &StoreError{err}
	}
	if got := sha256Hex(pkg); got != run.ExportSHA256 {
		return nil, *run, fmt.Errorf("export package of requisition %s: stored bytes hash to %s, register says %s", req.ID, got, run.ExportSHA256)
	}
	return pkg, *run, nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
