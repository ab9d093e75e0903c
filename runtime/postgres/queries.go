package postgres

import "fmt"

// queries holds every statement, built once per store so that pgx's
// statement cache sees the same text on every call.
type queries struct {
	lock          string
	appendEvents  [2][3]string // by [event shape - shapeOne][outbox shape]
	findIDs       string
	streamVersion string
	readStream    string
	readPayloads  string
	readAll       string
	saveSnapshot  string
	loadSnapshot  string
	relayTryLock  string
	relaySelect   string
	relayDelete   string
}

// streamColumns are the columns eventDecoder decodes, in this order;
// allColumns add the stream, which ReadStream knows already.
const (
	streamColumns = `sequence, position, id, type, schema_version, content_type, data, metadata, recorded_at`
	allColumns    = streamColumns + `, stream_type, stream_id`
)

func newQueries(n names) queries {
	return queries{
		lock: `SELECT pg_advisory_xact_lock($1)`,

		appendEvents: appendStatements(n),

		findIDs: fmt.Sprintf(`SELECT id, stream_type, stream_id, sequence, position FROM %s WHERE id = ANY($1)`, n.events),

		streamVersion: fmt.Sprintf(`SELECT coalesce(max(sequence), 0) FROM %s WHERE stream_type = $1 AND stream_id = $2`, n.events),

		// The unique (stream_type, stream_id, sequence) index serves both the
		// range condition and the order, so reading from after costs the
		// same however long the stream is.
		readStream: fmt.Sprintf(`SELECT %s FROM %s WHERE stream_type = $1 AND stream_id = $2 AND sequence > $3 ORDER BY sequence`, streamColumns, n.events),

		// What rehydration reads: less to send than readStream's rows.
		readPayloads: fmt.Sprintf(`SELECT sequence, type, schema_version, content_type, data FROM %s WHERE stream_type = $1 AND stream_id = $2 AND sequence > $3 ORDER BY sequence`, n.events),

		// LIMIT NULL means no limit.
		readAll: fmt.Sprintf(`SELECT %s FROM %s WHERE position > $1 ORDER BY position LIMIT $2`, allColumns, n.events),

		// A snapshot at a lower version than the stored one is ignored; one
		// at the same version replaces it (a new state schema, say).
		saveSnapshot: fmt.Sprintf(`INSERT INTO %[1]s AS s (stream_type, stream_id, version, schema_version, content_type, data)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET version = excluded.version, schema_version = excluded.schema_version, content_type = excluded.content_type, data = excluded.data, saved_at = now()
WHERE s.version <= excluded.version`, n.snapshots),

		loadSnapshot: fmt.Sprintf(`SELECT version, schema_version, content_type, data FROM %s WHERE stream_type = $1 AND stream_id = $2`, n.snapshots),

		relayTryLock: `SELECT pg_try_advisory_xact_lock($1)`,
		// The due messages at time $2: the first $1 of those to deliver at
		// once merged with the first $1 due delayed ones, each read through
		// its partial index (see migrations), so that messages that are not
		// due yet cost nothing however many wait.
		relaySelect: fmt.Sprintf(`SELECT position, topic, uuid, metadata, payload, deliver_at FROM (
	(SELECT position, topic, uuid, metadata, payload, deliver_at FROM %[1]s
		WHERE deliver_at IS NULL ORDER BY position LIMIT $1)
	UNION ALL
	(SELECT position, topic, uuid, metadata, payload, deliver_at FROM %[1]s
		WHERE deliver_at IS NOT NULL AND deliver_at <= $2 ORDER BY position LIMIT $1)
) AS due ORDER BY position LIMIT $1`, n.outbox),
		relayDelete: fmt.Sprintf(`DELETE FROM %s WHERE position = ANY($1)`, n.outbox),
	}
}

// Shapes of an append, each with its own statement. Arrays and unnest cost
// a single-row append a fifth more server time than scalars (measured with
// synchronous_commit off, where the statement is all there is), so the
// common single event and single message go as scalars.
const (
	shapeNone = iota // no rows (outbox only)
	shapeOne
	shapeMany
)

func shape(n int) int {
	return min(n, shapeMany)
}

// appendStatements builds the append statement for every shape.
//
// Each inserts the events and outbox rows if the stream is at the expected
// version ($3; negative means any). It runs after the lock statement in the
// same transaction, as a statement of its own, so that its snapshot
// includes every append that committed before the lock was granted: cur is
// the stream's true version.
//
// Sequences are cur.v + ordinality, and ORDER BY makes the identity hand
// out positions in event order. The outbox insert depends on ins, so that a
// version mismatch writes nothing. The statement returns the first and last
// position and the last sequence; no row, or NULLs, when the stream was at
// another version. A single event without outbox rows, the commonest
// append, is a plain INSERT ... SELECT: the CTE around it costs a few
// percent of the append.
//
// Parameters: $1 stream type, $2 stream id, $3 expected version, $4-$9 the
// events' id, type, schema version, content type, data and metadata, then
// $10-$14 the outbox rows' topic, uuid, metadata, payload and deliver_at;
// scalars for shapeOne, arrays for shapeMany.
func appendStatements(n names) (stmts [2][3]string) {
	for _, ev := range []int{shapeOne, shapeMany} {
		eventRows := `(VALUES ($4::text, $5::text, $6::int8, $7::text, $8::bytea, $9::bytea, 1::int8)) AS e(id, type, sv, ct, data, md, n)`
		eventOrder := ``
		if ev == shapeMany {
			eventRows = `unnest($4::text[], $5::text[], $6::int8[], $7::text[], $8::bytea[], $9::bytea[]) WITH ORDINALITY AS e(id, type, sv, ct, data, md, n)`
			eventOrder = `
ORDER BY e.n`
		}
		insert := fmt.Sprintf(`INSERT INTO %[1]s (id, stream_type, stream_id, sequence, type, schema_version, content_type, data, metadata, recorded_at)
SELECT e.id, $1, $2, cur.v + e.n, e.type, e.sv, e.ct, e.data, e.md, statement_timestamp()
FROM (SELECT coalesce(max(sequence), 0) AS v FROM %[1]s WHERE stream_type = $1 AND stream_id = $2) AS cur, %[2]s
WHERE $3::int8 < 0 OR cur.v = $3::int8%[3]s`, n.events, eventRows, eventOrder)
		for _, ob := range []int{shapeNone, shapeOne, shapeMany} {
			var outbox string
			switch ob {
			case shapeNone:
				if ev == shapeOne {
					stmts[ev-shapeOne][ob] = insert + `
RETURNING position, position, sequence`
					continue
				}
			case shapeOne:
				outbox = fmt.Sprintf(`, outbox AS (
INSERT INTO %s (topic, uuid, metadata, payload, deliver_at)
SELECT $10::text, $11::text, $12::bytea, $13::bytea, $14::timestamptz
WHERE EXISTS (SELECT FROM ins)
)`, n.outbox)
			case shapeMany:
				outbox = fmt.Sprintf(`, outbox AS (
INSERT INTO %s (topic, uuid, metadata, payload, deliver_at)
SELECT o.topic, o.uuid, o.md, o.payload, o.deliver_at
FROM unnest($10::text[], $11::text[], $12::bytea[], $13::bytea[], $14::timestamptz[]) WITH ORDINALITY AS o(topic, uuid, md, payload, deliver_at, n)
WHERE EXISTS (SELECT FROM ins)
ORDER BY o.n
)`, n.outbox)
			}
			stmts[ev-shapeOne][ob] = fmt.Sprintf(`WITH ins AS (
%s
RETURNING position, sequence
)%s
SELECT min(position), max(position), max(sequence) FROM ins`, insert, outbox)
		}
	}
	return stmts
}
