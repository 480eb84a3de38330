package legal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/connlog/connlog/store/internal/chsql"
)

// ErrNoRequisition reports a requisition id that is not in the register.
var ErrNoRequisition = errors.New("no such requisition")

// Requisition is one entry of the requisition register: an authority's
// request for connection records, as the officer entered it, and what was
// done about it.
type Requisition struct {
	ID             string `json:"id"`
	Authority      string `json:"authority"`
	OfficerName    string `json:"officer_name"`
	OfficerService string `json:"officer_service"`
	// Article is the legal basis invoked: 60-1, 60-2, 77-1-1, 77-1-2, 99-3,
	// 99-4 (code de procédure pénale) or "other", then explained in
	// ArticleText.
	Article      string    `json:"article"`
	ArticleText  string    `json:"article_text,omitempty"`
	ProcedureRef string    `json:"procedure_reference"`
	Received     time.Time `json:"date_received"`
	// Due is the date the authority expects the answer by, nil when the
	// requisition does not say (or was entered before it was recorded).
	Due       *time.Time `json:"date_due,omitempty"`
	Selectors []Selector `json:"selectors"`
	// Purpose is the purpose stated when the requisition was entered.
	Purpose string `json:"purpose"`
	// CreatedBy is the staff member who entered it.
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created_at"`
	// Runs are the export packages produced, oldest first.
	Runs []RequisitionRun `json:"runs"`
	// Answer is how the answer was sent, nil until it was.
	Answer *RequisitionAnswer `json:"answer,omitempty"`
}

// RequisitionRun is one run of a requisition: the package it produced.
type RequisitionRun struct {
	Time         time.Time `json:"time"`
	By           string    `json:"by"`
	ExportSHA256 string    `json:"export_sha256"`
	Rows         uint64    `json:"rows"`
}

// RequisitionAnswer records that the answer was sent to the authority.
type RequisitionAnswer struct {
	// Recorded is when it was entered in the register, By by whom.
	Recorded time.Time `json:"recorded_at"`
	By       string    `json:"by"`
	// SentAt is when it was sent, How by what means (e.g. "PLATEFORME
	// PNIJ", "registered mail").
	SentAt       time.Time `json:"sent_at"`
	How          string    `json:"how"`
	ExportSHA256 string    `json:"export_sha256,omitempty"`
}

// newRequisitionID returns a random identifier with the given prefix.
func newRequisitionID(prefix string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// syncInsert makes an insert return only once ClickHouse has written it.
func syncInsert(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"async_insert": 0}))
}

// CreateRequisition records r in the register with a new ID and, if zero,
// the current time as its creation time, and returns it as recorded.
func (s *Register) CreateRequisition(ctx context.Context, r Requisition) (Requisition, error) {
	id, err := newRequisitionID("req-")
	if err != nil {
		return r, fmt.Errorf("create requisition: %w", err)
	}
	r.ID = id
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	r.Created = r.Created.UTC().Truncate(time.Millisecond)
	r.Received = r.Received.UTC().Truncate(24 * time.Hour)
	if r.Due != nil {
		due := r.Due.UTC().Truncate(24 * time.Hour)
		r.Due = &due
	}
	if r.Selectors == nil {
		r.Selectors = []Selector{}
	}
	sel, err := json.Marshal(r.Selectors)
	if err != nil {
		return r, fmt.Errorf("create requisition: encode selectors: %w", err)
	}
	bt, err := s.conn.PrepareBatch(syncInsert(ctx), "INSERT INTO "+s.db.Ops+".requisitions (id, created_at, created_by, authority, officer_name, officer_service, article, article_text, procedure_ref, received_on, due_on, selectors, purpose)")
	if err != nil {
		return r, fmt.Errorf("create requisition: %w", err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(r.ID, r.Created, r.CreatedBy, r.Authority, r.OfficerName, r.OfficerService, r.Article, r.ArticleText,
		r.ProcedureRef, r.Received, r.Due, string(sel), r.Purpose); err != nil {
		return r, fmt.Errorf("create requisition: %w", err)
	}
	if err := bt.Send(); err != nil {
		return r, fmt.Errorf("create requisition: %w", err)
	}
	r.Runs = []RequisitionRun{}
	return r, nil
}

// Requisitions returns the register, newest first, with each entry's runs
// and answer.
func (s *Register) Requisitions(ctx context.Context) ([]Requisition, error) {
	return s.requisitions(ctx, "")
}

// Requisition returns the register entry id, or ErrNoRequisition.
func (s *Register) Requisition(ctx context.Context, id string) (Requisition, error) {
	rs, err := s.requisitions(ctx, id)
	if err != nil {
		return Requisition{}, err
	}
	if len(rs) == 0 {
		return Requisition{}, fmt.Errorf("requisition %q: %w", id, ErrNoRequisition)
	}
	return rs[0], nil
}

func (s *Register) requisitions(ctx context.Context, id string) ([]Requisition, error) {
	where, params := "", map[string]string{}
	if id != "" {
		where = " WHERE id = {id:String}"
		params["id"] = chsql.Escape(id)
	}
	rows, err := s.conn.Query(chsql.WithParams(ctx, params), "SELECT id, created_at, created_by, authority, officer_name, officer_service, article, article_text, procedure_ref, received_on, due_on, selectors, purpose FROM "+
		s.db.Ops+".requisitions"+where+" ORDER BY created_at DESC, id")
	if err != nil {
		return nil, fmt.Errorf("read requisitions: %w", err)
	}
	var out []Requisition
	byID := map[string]int{}
	for rows.Next() {
		var r Requisition
		var sel string
		if err := rows.Scan(&r.ID, &r.Created, &r.CreatedBy, &r.Authority, &r.OfficerName, &r.OfficerService, &r.Article, &r.ArticleText,
			&r.ProcedureRef, &r.Received, &r.Due, &sel, &r.Purpose); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read requisition: %w", err)
		}
		if err := json.Unmarshal([]byte(sel), &r.Selectors); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read requisition %s selectors: %w", r.ID, err)
		}
		r.Created, r.Received = r.Created.UTC(), r.Received.UTC()
		if r.Due != nil {
			due := r.Due.UTC()
			r.Due = &due
		}
		r.Runs = []RequisitionRun{}
		byID[r.ID] = len(out)
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read requisitions: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}

	where = ""
	if id != "" {
		where = " WHERE requisition_id = {id:String}"
	}
	rows, err = s.conn.Query(chsql.WithParams(ctx, params), "SELECT requisition_id, time, toString(kind), actor, export_sha256, rows, sent_at, sent_how FROM "+
		s.db.Ops+".requisition_events"+where+" ORDER BY requisition_id, time")
	if err != nil {
		return nil, fmt.Errorf("read requisition events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rid, kind, actor, sum, how string
			at, sent                   time.Time
			n                          uint64
		)
		if err := rows.Scan(&rid, &at, &kind, &actor, &sum, &n, &sent, &how); err != nil {
			return nil, fmt.Errorf("read requisition event: %w", err)
		}
		i, ok := byID[rid]
		if !ok {
			continue
		}
		switch kind {
		case "run":
			out[i].Runs = append(out[i].Runs, RequisitionRun{Time: at.UTC(), By: actor, ExportSHA256: sum, Rows: n})
		case "answered":
			out[i].Answer = &RequisitionAnswer{Recorded: at.UTC(), By: actor, SentAt: sent.UTC(), How: how, ExportSHA256: sum}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read requisition events: %w", err)
	}
	return out, nil
}

// RecordRequisitionExport keeps the export package pkg of requisition id,
// whose hex SHA-256 is sum and which holds rows records, then records the
// run in the register. The package is written first: a run in the register
// always has its package.
func (s *Register) RecordRequisitionExport(ctx context.Context, id, by string, at time.Time, sum string, rows uint64, pkg []byte) error {
	at = at.UTC().Truncate(time.Millisecond)
	ctx = syncInsert(ctx)
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".requisition_exports (requisition_id, export_sha256, created_at, package)")
	if err != nil {
		return fmt.Errorf("store export package: %w", err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(id, sum, at, string(pkg)); err != nil {
		return fmt.Errorf("store export package: %w", err)
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("store export package: %w", err)
	}
	return s.requisitionEvent(ctx, id, at, "run", by, sum, rows, time.Unix(0, 0), "")
}

// MarkRequisitionAnswered records that the answer to requisition id was
// sent at sentAt by the means how; the latest package is named as the one
// sent.
func (s *Register) MarkRequisitionAnswered(ctx context.Context, id, by string, at, sentAt time.Time, how, exportSHA256 string) error {
	return s.requisitionEvent(syncInsert(ctx), id, at.UTC().Truncate(time.Millisecond), "answered", by, exportSHA256, 0, sentAt.UTC(), how)
}

func (s *Register) requisitionEvent(ctx context.Context, id string, at time.Time, kind, by, sum string, rows uint64, sentAt time.Time, how string) error {
	bt, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db.Ops+".requisition_events (requisition_id, time, kind, actor, export_sha256, rows, sent_at, sent_how)")
	if err != nil {
		return fmt.Errorf("record requisition %s: %w", kind, err)
	}
	defer bt.Abort() //nolint:errcheck // no-op once sent
	if err := bt.Append(id, at, kind, by, sum, rows, sentAt, how); err != nil {
		return fmt.Errorf("record requisition %s: %w", kind, err)
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("record requisition %s: %w", kind, err)
	}
	return nil
}

// RequisitionExport returns the package of requisition id whose SHA-256 is
// sum, byte for byte as it was built.
func (s *Register) RequisitionExport(ctx context.Context, id, sum string) ([]byte, error) {
	ctx = chsql.WithParams(ctx, map[string]string{"id": chsql.Escape(id), "sum": chsql.Escape(sum)})
	row := s.conn.QueryRow(ctx, "SELECT package FROM "+s.db.Ops+".requisition_exports WHERE requisition_id = {id:String} AND export_sha256 = {sum:String} LIMIT 1")
	var pkg string
	if err := row.Scan(&pkg); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("export %s of requisition %q: %w", sum, id, ErrNoRequisition)
		}
		return nil, fmt.Errorf("read export package: %w", err)
	}
	return []byte(pkg), nil
}
