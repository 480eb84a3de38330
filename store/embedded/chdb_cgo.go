//go:build cgo

package embedded

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The chDB C API. libchdb.so ships without a header, so the prototypes are
// declared here by hand and every function is looked up with dlsym: go build
// never needs the library, only the running process does.
typedef struct chdb_result_ { void * internal_data; } chdb_result;
typedef struct chdb_connection_ { void * internal_data; } * chdb_connection;
typedef enum chdb_state { CHDBSuccess = 0, CHDBError = 1 } chdb_state;

typedef chdb_result * (*cl_query_params_fn)(chdb_connection, const char *, size_t, const char *, size_t,
	const char * const *, const size_t *, const char * const *, const size_t *, size_t);

typedef struct {
	void * handle;
	chdb_connection * conn;
	const char * (*version)(void);
	void (*set_signal_handlers_enabled)(int);
	chdb_connection * (*connect)(int, char **);
	void (*close_conn)(chdb_connection *);
	cl_query_params_fn query;
	cl_query_params_fn stream_query;
	chdb_result * (*stream_fetch)(chdb_connection, chdb_result *);
	void (*stream_cancel)(chdb_connection, chdb_result *);
	void (*destroy_result)(chdb_result *);
	char * (*result_buffer)(chdb_result *);
	size_t (*result_length)(chdb_result *);
	const char * (*result_error)(chdb_result *);
} cl_lib;

// cl_open loads the library and resolves every symbol. On failure it returns
// NULL and a static description in *err.
static cl_lib * cl_open(const char * path, const char ** err) {
	void * h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		*err = dlerror();
		return NULL;
	}
	cl_lib * l = calloc(1, sizeof(cl_lib));
	l->handle = h;
#define CL_SYM(field, name) \
	*(void **)(&l->field) = dlsym(h, name); \
	if (l->field == NULL) { *err = "missing symbol " name; free(l); dlclose(h); return NULL; }
	CL_SYM(version, "chdb_version")
	CL_SYM(set_signal_handlers_enabled, "chdb_set_signal_handlers_enabled")
	CL_SYM(connect, "chdb_connect")
	CL_SYM(close_conn, "chdb_close_conn")
	CL_SYM(query, "chdb_query_with_params_n")
	CL_SYM(stream_query, "chdb_stream_query_with_params_n")
	CL_SYM(stream_fetch, "chdb_stream_fetch_result")
	CL_SYM(stream_cancel, "chdb_stream_cancel_query")
	CL_SYM(destroy_result, "chdb_destroy_query_result")
	CL_SYM(result_buffer, "chdb_result_buffer")
	CL_SYM(result_length, "chdb_result_length")
	CL_SYM(result_error, "chdb_result_error")
#undef CL_SYM
	return l;
}

static const char * cl_version(cl_lib * l) { return l->version(); }

static int cl_connect(cl_lib * l, int argc, char ** argv) {
	// Leave SIGTERM, SIGINT and friends to the Go runtime.
	l->set_signal_handlers_enabled(0);
	l->conn = l->connect(argc, argv);
	return l->conn != NULL && *l->conn != NULL;
}

static void cl_close(cl_lib * l) {
	if (l->conn != NULL) {
		l->close_conn(l->conn);
		l->conn = NULL;
	}
}

static chdb_result * cl_query(cl_lib * l, const char * q, size_t ql, const char * f, size_t fl,
		const char * const * pn, const size_t * pnl, const char * const * pv, const size_t * pvl, size_t n) {
	return l->query(*l->conn, q, ql, f, fl, pn, pnl, pv, pvl, n);
}
static chdb_result * cl_stream_query(cl_lib * l, const char * q, size_t ql, const char * f, size_t fl,
		const char * const * pn, const size_t * pnl, const char * const * pv, const size_t * pvl, size_t n) {
	return l->stream_query(*l->conn, q, ql, f, fl, pn, pnl, pv, pvl, n);
}
static chdb_result * cl_stream_fetch(cl_lib * l, chdb_result * s) { return l->stream_fetch(*l->conn, s); }
static void cl_stream_cancel(cl_lib * l, chdb_result * s) { l->stream_cancel(*l->conn, s); }
static void cl_destroy_result(cl_lib * l, chdb_result * r) { l->destroy_result(r); }
static char * cl_result_buffer(cl_lib * l, chdb_result * r) { return l->result_buffer(r); }
static size_t cl_result_length(cl_lib * l, chdb_result * r) { return l->result_length(r); }
static const char * cl_result_error(cl_lib * l, chdb_result * r) { return l->result_error(r); }

*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// cgoBuild tells Open whether chDB can be loaded at all.
const cgoBuild = true

// chdb is the loaded library and its single connection. Its methods are not
// safe for concurrent use: chDB runs one statement at a time, and Engine
// serializes all calls with its mutex.
type chdb struct {
	c *C.cl_lib
}

// loadCHDB dlopens the library at path and connects with args (argv[1:]).
func loadCHDB(path string, args []string) (*chdb, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	l := C.cl_open(cpath, &cerr)
	if l == nil {
		return nil, fmt.Errorf("load %s: %s: %w", path, C.GoString(cerr), errNotLoaded)
	}
	argv := make([]*C.char, 0, len(args)+1)
	argv = append(argv, C.CString("connlog"))
	for _, a := range args {
		argv = append(argv, C.CString(a))
	}
	cargv := (**C.char)(C.malloc(C.size_t(len(argv)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	copy(unsafe.Slice(cargv, len(argv)), argv)
	ok := C.cl_connect(l, C.int(len(argv)), cargv)
	for _, a := range argv {
		C.free(unsafe.Pointer(a))
	}
	C.free(unsafe.Pointer(cargv))
	if ok == 0 {
		// The library stays loaded: chDB cannot be unloaded cleanly.
		return nil, errors.New("chdb_connect failed (is the data directory writable and not used by another process?)")
	}
	return &chdb{c: l}, nil
}

func (d *chdb) version() string { return C.GoString(C.cl_version(d.c)) }

func (d *chdb) close() { C.cl_close(d.c) }

// cArgs holds C copies of a statement, its format and its parameters.
type cArgs struct {
	query, format *C.char
	qlen, flen    C.size_t
	names, values **C.char
	nlens, vlens  *C.size_t
	n             C.size_t
	allocs        []unsafe.Pointer
}

func newCArgs(query, format string, params []param) *cArgs {
	a := &cArgs{n: C.size_t(len(params))}
	a.query, a.qlen = a.str(query)
	a.format, a.flen = a.str(format)
	if len(params) > 0 {
		ptr := C.size_t(unsafe.Sizeof(uintptr(0)))
		a.names = (**C.char)(a.alloc(a.n * ptr))
		a.values = (**C.char)(a.alloc(a.n * ptr))
		a.nlens = (*C.size_t)(a.alloc(a.n * C.size_t(unsafe.Sizeof(C.size_t(0)))))
		a.vlens = (*C.size_t)(a.alloc(a.n * C.size_t(unsafe.Sizeof(C.size_t(0)))))
		names, values := unsafe.Slice(a.names, len(params)), unsafe.Slice(a.values, len(params))
		nlens, vlens := unsafe.Slice(a.nlens, len(params)), unsafe.Slice(a.vlens, len(params))
		for i, p := range params {
			names[i], nlens[i] = a.str(p.name)
			values[i], vlens[i] = a.str(p.value)
		}
	}
	return a
}

func (a *cArgs) alloc(n C.size_t) unsafe.Pointer {
	p := C.malloc(n)
	a.allocs = append(a.allocs, p)
	return p
}

func (a *cArgs) str(s string) (*C.char, C.size_t) {
	p := (*C.char)(a.alloc(C.size_t(len(s)) + 1))
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return p, C.size_t(len(s))
}

func (a *cArgs) free() {
	for _, p := range a.allocs {
		C.free(p)
	}
}

// resultError returns the error carried by r, or nil.
func (d *chdb) resultError(r *C.chdb_result) error {
	if r == nil {
		return errors.New("chdb returned no result")
	}
	if e := C.cl_result_error(d.c, r); e != nil {
		if msg := C.GoString(e); msg != "" {
			return newEngineError(msg)
		}
	}
	return nil
}

// query runs a statement to completion and passes its whole output to fn;
// the slice is valid only during fn. It serves statements chDB cannot stream
// (DDL, SET, INSERT ... SELECT); their output is small. It also serves
// INSERT with its data inline after the FORMAT clause: chDB's streaming
// insert API (chdb_stream_insert_*) makes one of the engine's own threads
// log "<Fatal> ThreadStatus: current_thread contains invalid address" at
// every insert, whichever thread calls it; an inline insert does not.
func (d *chdb) query(query, format string, params []param, fn func([]byte) error) error {
	a := newCArgs(query, format, params)
	defer a.free()
	r := C.cl_query(d.c, a.query, a.qlen, a.format, a.flen, a.names, a.nlens, a.values, a.vlens, a.n)
	if r == nil {
		return errors.New("chdb returned no result")
	}
	defer C.cl_destroy_result(d.c, r)
	if err := d.resultError(r); err != nil {
		return err
	}
	if n := int(C.cl_result_length(d.c, r)); n > 0 && fn != nil {
		return fn(unsafe.Slice((*byte)(unsafe.Pointer(C.cl_result_buffer(d.c, r))), n))
	}
	return nil
}

// stream is a running streaming query. It must be finished with close.
type stream struct {
	d *chdb
	r *C.chdb_result
}

// streamQuery starts query; the result arrives through next.
func (d *chdb) streamQuery(query, format string, params []param) (*stream, error) {
	a := newCArgs(query, format, params)
	defer a.free()
	r := C.cl_stream_query(d.c, a.query, a.qlen, a.format, a.flen, a.names, a.nlens, a.values, a.vlens, a.n)
	if err := d.resultError(r); err != nil {
		if r != nil {
			C.cl_destroy_result(d.c, r)
		}
		return nil, err
	}
	return &stream{d: d, r: r}, nil
}

// next fetches the next chunk and passes it to fn; the slice is valid only
// during fn. It reports false at the end of the result.
func (s *stream) next(fn func([]byte) error) (bool, error) {
	r := C.cl_stream_fetch(s.d.c, s.r)
	if r == nil {
		return false, errors.New("chdb returned no result chunk")
	}
	defer C.cl_destroy_result(s.d.c, r)
	if err := s.d.resultError(r); err != nil {
		return false, err
	}
	n := int(C.cl_result_length(s.d.c, r))
	if n == 0 {
		return false, nil
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(C.cl_result_buffer(s.d.c, r))), n)
	return true, fn(buf)
}

// cancel stops the query early; close must still be called.
func (s *stream) cancel() { C.cl_stream_cancel(s.d.c, s.r) }

func (s *stream) close() {
	if s.r != nil {
		C.cl_destroy_result(s.d.c, s.r)
		s.r = nil
	}
}
