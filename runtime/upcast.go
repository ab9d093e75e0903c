package runtime

import (
	"context"
	"fmt"
)

// UpcastFunc rewrites a stored event of an older schema version, or of a
// retired type, into the next one: it sets rec.Type, rec.SchemaVersion and
// rec.Data. It must not modify the bytes of rec.Data in place, which belong
// to the store: it assigns a new slice.
type UpcastFunc func(ctx context.Context, rec *EventRecord) error

// maxUpcasts bounds one event's chain of upcasters, to report a cycle
// instead of looping.
const maxUpcasts = 64

type upcastKey struct {
	eventType string
	version   uint32
}

// Upcasters holds the upcasters a Repository runs on stored events before
// decoding them. Register them all before the Repository first loads; after
// that it is read-only and safe for concurrent use.
type Upcasters struct {
	m map[upcastKey]UpcastFunc
}

// NewUpcasters returns an empty set of upcasters.
func NewUpcasters() *Upcasters {
	return &Upcasters{m: make(map[upcastKey]UpcastFunc)}
}

// Register adds fn for events stored with type eventType at schema version
// fromVersion. fn must produce a later version, or another type.
func (u *Upcasters) Register(eventType string, fromVersion uint32, fn UpcastFunc) error {
	if eventType == "" || fromVersion == 0 || fn == nil {
		return fmt.Errorf("register upcaster: need an event type, a version of at least 1 and a function (got %q, %d)", eventType, fromVersion)
	}
	k := upcastKey{eventType, fromVersion}
	if _, dup := u.m[k]; dup {
		return fmt.Errorf("register upcaster: %s version %d has one already", eventType, fromVersion)
	}
	u.m[k] = fn
	return nil
}

// Upcast runs the upcasters registered for rec's type and version, one after
// the other, until none applies.
func (u *Upcasters) Upcast(ctx context.Context, rec *EventRecord) error {
	if len(u.m) == 0 {
		return nil
	}
	for range maxUpcasts {
		from := upcastKey{rec.Type, rec.SchemaVersion}
		fn, ok := u.m[from]
		if !ok {
			return nil
		}
		if err := fn(ctx, rec); err != nil {
			return fmt.Errorf("upcast %s version %d: %w", from.eventType, from.version, err)
		}
		if rec.Type == from.eventType && rec.SchemaVersion <= from.version {
			return fmt.Errorf("upcast %s version %d: the upcaster left the version at %d: it must raise it", from.eventType, from.version, rec.SchemaVersion)
		}
	}
	return fmt.Errorf("upcast %s version %d: more than %d upcasters in a row: is there a cycle?", rec.Type, rec.SchemaVersion, maxUpcasts)
}
