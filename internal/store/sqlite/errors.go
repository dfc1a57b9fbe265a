package sqlite

import "errors"

// Memory is the path of a private in-memory database (for tests).
const Memory = ":memory:"

// ErrUnavailable is returned by Open in builds without SQLite: mips*,
// illumos, or the nosqlite tag.
var ErrUnavailable = errors.New("sqlite not available on this platform")

// ErrSchemaTooNew is returned by Open for a database whose schema is newer
// than this binary knows: it was written by a newer kmsd.
var ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this kmsd supports")
