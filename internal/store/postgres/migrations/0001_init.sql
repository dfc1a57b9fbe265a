-- kmsd PostgreSQL schema version 1: the activation log and the client
-- inventory. Times are timestamptz (microseconds); durations are
-- microseconds; GUIDs are their canonical text; the protocol's unsigned
-- 32-bit fields are bigint.

CREATE TABLE activation (
	id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	received            timestamptz NOT NULL,
	host                text        NOT NULL DEFAULT '',
	peer                text        NOT NULL DEFAULT '',
	protocol            text        NOT NULL DEFAULT '',
	hresult             bigint      NOT NULL DEFAULT 0,
	n_policy            bigint      NOT NULL DEFAULT 0,
	workstation         text        NOT NULL DEFAULT '',
	cmid                text        NOT NULL DEFAULT '',
	previous_cmid       text        NOT NULL DEFAULT '',
	client_time         timestamptz,
	vm                  boolean     NOT NULL DEFAULT false,
	license_status      bigint      NOT NULL DEFAULT 0,
	binding_expiration  bigint      NOT NULL DEFAULT 0,
	app_id              text        NOT NULL DEFAULT '',
	sku_id              text        NOT NULL DEFAULT '',
	kms_id              text        NOT NULL DEFAULT '',
	product             text        NOT NULL DEFAULT '',
	kms_name            text        NOT NULL DEFAULT '',
	count               bigint      NOT NULL DEFAULT 0,
	epid                text        NOT NULL DEFAULT '',
	activation_interval bigint      NOT NULL DEFAULT 0,
	renewal_interval    bigint      NOT NULL DEFAULT 0
);

CREATE INDEX activation_received ON activation (received);
CREATE INDEX activation_cmid ON activation (cmid, received);
CREATE INDEX activation_kms_id ON activation (kms_id, received);

-- One row per client machine ID, shared by every host writing to the
-- database. Writers lock the rows of a batch's CMIDs (in CMID order) and
-- merge the batch with store.Client.Apply, so two hosts updating one CMID
-- at once are serialized. names and addrs are the sorted distinct machine
-- names and addresses (at most store.MaxNamesPerClient each).
CREATE TABLE clients (
	cmid           text        PRIMARY KEY,
	first_seen     timestamptz NOT NULL,
	last_seen      timestamptz NOT NULL,
	workstation    text        NOT NULL DEFAULT '',
	peer           text        NOT NULL DEFAULT '',
	product        text        NOT NULL DEFAULT '',
	sku_id         text        NOT NULL DEFAULT '',
	kms_id         text        NOT NULL DEFAULT '',
	license_status bigint      NOT NULL DEFAULT 0,
	vm             boolean     NOT NULL DEFAULT false,
	last_hresult   bigint      NOT NULL DEFAULT 0,
	renewal_due    timestamptz,
	clock_skew     bigint      NOT NULL DEFAULT 0,
	activations    bigint      NOT NULL DEFAULT 0,
	names          text[]      NOT NULL DEFAULT '{}',
	addrs          text[]      NOT NULL DEFAULT '{}'
);

CREATE INDEX clients_last_seen ON clients (last_seen);
CREATE INDEX clients_kms_id ON clients (kms_id, last_seen);
