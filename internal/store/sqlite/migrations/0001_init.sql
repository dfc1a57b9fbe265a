-- kmsd schema version 1: the activation log and the client inventory.
-- Times are Unix microseconds (UTC); durations are microseconds; GUIDs are
-- their canonical text; booleans are 0/1.

CREATE TABLE activation (
	id                  INTEGER PRIMARY KEY,
	received            INTEGER NOT NULL,
	host                TEXT    NOT NULL DEFAULT '',
	peer                TEXT    NOT NULL DEFAULT '',
	protocol            TEXT    NOT NULL DEFAULT '',
	hresult             INTEGER NOT NULL DEFAULT 0,
	n_policy            INTEGER NOT NULL DEFAULT 0,
	workstation         TEXT    NOT NULL DEFAULT '',
	cmid                TEXT    NOT NULL DEFAULT '',
	previous_cmid       TEXT    NOT NULL DEFAULT '',
	client_time         INTEGER,
	vm                  INTEGER NOT NULL DEFAULT 0,
	license_status      INTEGER NOT NULL DEFAULT 0,
	binding_expiration  INTEGER NOT NULL DEFAULT 0,
	app_id              TEXT    NOT NULL DEFAULT '',
	sku_id              TEXT    NOT NULL DEFAULT '',
	kms_id              TEXT    NOT NULL DEFAULT '',
	product             TEXT    NOT NULL DEFAULT '',
	kms_name            TEXT    NOT NULL DEFAULT '',
	count               INTEGER NOT NULL DEFAULT 0,
	epid                TEXT    NOT NULL DEFAULT '',
	activation_interval INTEGER NOT NULL DEFAULT 0,
	renewal_interval    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX activation_received ON activation (received);
CREATE INDEX activation_cmid ON activation (cmid, received);
CREATE INDEX activation_kms_id ON activation (kms_id, received);

-- One row per client machine ID, maintained with every batch of records.
CREATE TABLE clients (
	cmid           TEXT    PRIMARY KEY,
	first_seen     INTEGER NOT NULL,
	last_seen      INTEGER NOT NULL,
	workstation    TEXT    NOT NULL DEFAULT '',
	peer           TEXT    NOT NULL DEFAULT '',
	product        TEXT    NOT NULL DEFAULT '',
	sku_id         TEXT    NOT NULL DEFAULT '',
	kms_id         TEXT    NOT NULL DEFAULT '',
	license_status INTEGER NOT NULL DEFAULT 0,
	vm             INTEGER NOT NULL DEFAULT 0,
	last_hresult   INTEGER NOT NULL DEFAULT 0,
	renewal_due    INTEGER,
	clock_skew     INTEGER NOT NULL DEFAULT 0,
	activations    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX clients_last_seen ON clients (last_seen);
CREATE INDEX clients_kms_id ON clients (kms_id, last_seen);

-- The distinct machine names and addresses seen per CMID (capped by the
-- code at store.MaxNamesPerClient each).
CREATE TABLE client_names (
	cmid TEXT NOT NULL,
	name TEXT NOT NULL,
	PRIMARY KEY (cmid, name)
) WITHOUT ROWID;

CREATE TABLE client_addrs (
	cmid TEXT NOT NULL,
	addr TEXT NOT NULL,
	PRIMARY KEY (cmid, addr)
) WITHOUT ROWID;
