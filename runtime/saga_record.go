package runtime

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
)

// The persisted form of a saga instance, which is wire API: stores keep
// it for as long as instances live.
//
// Each transition appends one EventRecord to the instance's stream
// {Type: saga name, ID: instance id}: Type is SagaSpec.StateType,
// SchemaVersion 1, Data the state encoded with SagaConfig.Codec
// (ContentType names the codec), and Metadata a JSON object of strings
// (DecodeMetadata reads it) holding the saga's control fields next to the
// usual envelope attributes (ce_source, ce_time, and the correlation and
// causation ids of the message handled). It is read and written as a
// struct, sagaRecordMeta, which costs a fraction of a map:
//
//   - eda_saga_status: "running", "completed" or "compensated";
//   - eda_saga_step: the current step's name (for a compensated instance,
//     the step that failed; absent once completed). Steps are found by
//     name, so steps may be added or reordered between releases as long
//     as running instances' steps keep their names;
//   - eda_saga_step_deadline, eda_saga_deadline: when the current step and
//     the whole saga time out, RFC 3339 with nanoseconds in UTC; absent
//     for none;
//   - eda_saga_failure: why the instance compensated.
//
// The record's id is a UUID (version 8: SHA-1 based, see deriveID) of the
// saga name, the instance id and the handled message's id; the ids of the
// outbox messages of the transition derive from the record's id and their
// index.
type sagaRecordMeta struct {
	Source        string `json:"ce_source,omitempty"`
	Time          string `json:"ce_time,omitempty"`
	CorrelationID string `json:"eda_correlationid,omitempty"`
	CausationID   string `json:"eda_causationid,omitempty"`
	Status        string `json:"eda_saga_status"`
	Step          string `json:"eda_saga_step,omitempty"`
	StepDeadline  string `json:"eda_saga_step_deadline,omitempty"`
	Deadline      string `json:"eda_saga_deadline,omitempty"`
	Failure       string `json:"eda_saga_failure,omitempty"`
}

// sagaStateVersion is the schema version of saga records.
const sagaStateVersion = 1

// Name spaces of deriveID, so that a transition id never equals a message
// id derived from the same strings.
const (
	transitionIDSpace = "eda.saga.transition"
	messageIDSpace    = "eda.saga.message"
)

// Scopes of a timeout.
const (
	timeoutScopeStep = "step"
	timeoutScopeSaga = "saga"
)

// sagaTimeout is the JSON payload of a SagaTimeoutType message.
type sagaTimeout struct {
	// Saga is the saga's name, so that sagas may share a timeout topic.
	Saga string `json:"saga"`
	// ID is the instance id.
	ID string `json:"id"`
	// Scope is "step" for a step's timeout, "saga" for the saga's.
	Scope string `json:"scope"`
	// Step is the step a step timeout was armed for.
	Step string `json:"step,omitempty"`
	// Version is the instance's version once the transition that armed
	// the timeout was stored: a step timeout fires only if the instance is
	// still there.
	Version uint64 `json:"version"`
	// Deadline is when the timeout is due.
	Deadline time.Time `json:"deadline"`
}

// deriveID returns a UUID of the SHA-1 of parts, with the version 8
// (custom) and RFC 9562 variant bits set: the same parts always give the
// same id, which is what makes a transition idempotent. Each part is
// length-prefixed, so ("ab", "c") and ("a", "bc") differ.
func deriveID(parts ...string) string {
	h := sha1.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	var id uuid.UUID
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // variant 10
	return id.String()
}

// sagaCurrent is an instance as loaded, with the deadlines a transition
// carries over.
type sagaCurrent[S proto.Message] struct {
	inst         SagaInstance[S]
	found        bool
	stepDeadline time.Time
	sagaDeadline time.Time
	// lastID is the id of the last transition record.
	lastID string
}

// next returns a transition that keeps the instance as it is, with state.
func (c *sagaCurrent[S]) next(state S) *sagaTransition[S] {
	return &sagaTransition[S]{
		state:        state,
		status:       c.inst.Status,
		step:         c.inst.Step,
		stepDeadline: c.stepDeadline,
		sagaDeadline: c.sagaDeadline,
	}
}

// Load returns instance id, or an error wrapping ErrSagaNotFound.
func (s *Saga[S]) Load(ctx context.Context, id string) (SagaInstance[S], error) {
	cur, err := s.load(ctx, id)
	if err != nil {
		return SagaInstance[S]{}, err
	}
	if !cur.found {
		return SagaInstance[S]{}, fmt.Errorf("saga %s: instance %q: %w", s.spec.Name, id, ErrSagaNotFound)
	}
	return cur.inst, nil
}

// load reads instance id: its stream's last record. A record it cannot
// read is a Permanent error: reading it again gives the same.
func (s *Saga[S]) load(ctx context.Context, id string) (*sagaCurrent[S], error) {
	stream := StreamID{Type: s.spec.Name, ID: id}
	cur := &sagaCurrent[S]{inst: SagaInstance[S]{ID: id}}
	var last EventRecord
	err := s.store.ReadStream(ctx, stream, 0, func(rec *EventRecord) error {
		// Streams are a few records long; each is copied, as the record is
		// valid only until fn returns.
		last = *rec
		last.Data = bytes.Clone(rec.Data)
		last.Metadata = bytes.Clone(rec.Metadata)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("saga %s: load instance %s: %w", s.spec.Name, id, err)
	}
	if last.Sequence == 0 {
		return cur, nil
	}
	cur.found, cur.lastID = true, last.ID
	if err := s.decodeRecord(&last, cur); err != nil {
		return nil, Permanent(&LoadError{Stream: stream, Version: last.Sequence, Type: last.Type, Err: err})
	}
	return cur, nil
}

// decodeRecord fills cur from rec.
func (s *Saga[S]) decodeRecord(rec *EventRecord, cur *sagaCurrent[S]) error {
	if rec.Type != s.spec.StateType {
		return fmt.Errorf("the record holds a %s, not the saga's state %s", rec.Type, s.spec.StateType)
	}
	codec, err := CodecFor(rec.ContentType)
	if err != nil {
		return err
	}
	state := s.spec.New()
	if err := codec.Unmarshal(rec.Data, state); err != nil {
		return fmt.Errorf("decode the state: %w", err)
	}
	var md sagaRecordMeta
	if err := json.Unmarshal(rec.Metadata, &md); err != nil {
		return fmt.Errorf("decode metadata: %w", err)
	}
	inst := &cur.inst
	inst.State, inst.Version, inst.Failure = state, rec.Sequence, md.Failure
	switch status := md.Status; status {
	case SagaRunning.String():
		inst.Status = SagaRunning
	case SagaCompleted.String():
		inst.Status, inst.Step = SagaCompleted, len(s.spec.Steps)
	case SagaCompensated.String():
		inst.Status = SagaCompensated
	default:
		return fmt.Errorf("unknown saga status %q", status)
	}
	if inst.Status != SagaCompleted {
		name := md.Step
		step, ok := s.steps[name]
		if !ok {
			return fmt.Errorf("the instance is at step %q, which the saga no longer has: keep the step until its instances finish", name)
		}
		inst.Step, inst.StepName = step, name
	}
	if cur.stepDeadline, err = parseDeadline(md.StepDeadline); err != nil {
		return err
	}
	if cur.sagaDeadline, err = parseDeadline(md.Deadline); err != nil {
		return err
	}
	if inst.Status == SagaRunning {
		inst.Deadline = sooner(cur.stepDeadline, cur.sagaDeadline)
	}
	return nil
}

func parseDeadline(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("deadline %q: %w", s, err)
	}
	return t, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// sooner returns the earlier of two times, zero meaning none.
func sooner(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// appendRequest builds the append that stores t on cur: the transition
// record, then the commands and timeouts in the outbox, in that order.
func (s *Saga[S]) appendRequest(ctx context.Context, cur *sagaCurrent[S], t *sagaTransition[S], recordID string) (AppendRequest, error) {
	id := cur.inst.ID
	fail := func(err error) (AppendRequest, error) {
		return AppendRequest{}, fmt.Errorf("saga %s: instance %s: %w", s.spec.Name, id, err)
	}
	data, err := s.env.Codec.Marshal(t.state)
	if err != nil {
		return fail(fmt.Errorf("encode the state: %w", err))
	}
	now := formatTime(s.env.Now())
	correlationID, causationID, traceparent := correlationFrom(ctx)
	md := sagaRecordMeta{
		Source:        s.env.Source,
		Time:          now,
		CorrelationID: correlationID,
		CausationID:   causationID,
		Status:        t.status.String(),
		Failure:       t.failure,
	}
	if t.status != SagaCompleted {
		md.Step = s.spec.Steps[t.step].Name
	}
	if !t.stepDeadline.IsZero() {
		md.StepDeadline = formatTime(t.stepDeadline)
	}
	if !t.sagaDeadline.IsZero() {
		md.Deadline = formatTime(t.sagaDeadline)
	}
	mdBytes, err := json.Marshal(md)
	if err != nil {
		return fail(err)
	}
	req := AppendRequest{
		Stream:          StreamID{Type: s.spec.Name, ID: id},
		ExpectedVersion: cur.inst.Version,
		Events: []EventRecord{{
			ID: recordID, Type: s.spec.StateType, SchemaVersion: sagaStateVersion,
			ContentType: s.env.Codec.ContentType(), Data: data, Metadata: mdBytes,
		}},
		Outbox: make([]OutboxMessage, 0, len(t.commands)+len(t.timeouts)),
	}
	for _, c := range t.commands {
		if c.typ.Topic == "" {
			// A bug in the spec, which no retry fixes.
			return AppendRequest{}, Permanent(fmt.Errorf("saga %s: instance %s: command %s has no topic", s.spec.Name, id, c.typ.Name))
		}
		msgID := deriveID(messageIDSpace, recordID, strconv.Itoa(len(req.Outbox)))
		env := s.env
		env.NewID = func() (string, error) { return msgID, nil }
		_, payload, cmdMD, err := newEnvelope(ctx, &env, c.typ, c.out)
		if err != nil {
			return fail(err)
		}
		cmdBytes, err := EncodeMetadata(cmdMD)
		if err != nil {
			return fail(err)
		}
		req.Outbox = append(req.Outbox, OutboxMessage{Topic: c.typ.Topic, UUID: msgID, Metadata: cmdBytes, Payload: payload})
	}
	for _, tm := range t.timeouts {
		msgID := deriveID(messageIDSpace, recordID, strconv.Itoa(len(req.Outbox)))
		payload, err := json.Marshal(tm)
		if err != nil {
			return fail(err)
		}
		tmMD := map[string]string{
			MetaID:          msgID,
			MetaType:        SagaTimeoutType,
			MetaSource:      s.env.Source,
			MetaTime:        now,
			MetaContentType: ContentTypeJSON,
			MetaSubject:     id,
		}
		if correlationID != "" && correlationID != msgID {
			tmMD[MetaCorrelationID] = correlationID
		}
		setIf(tmMD, MetaCausationID, causationID)
		setIf(tmMD, MetaTraceparent, traceparent)
		tmBytes, err := EncodeMetadata(tmMD)
		if err != nil {
			return fail(err)
		}
		req.Outbox = append(req.Outbox, OutboxMessage{Topic: s.timeoutTopic, UUID: msgID, Metadata: tmBytes, Payload: payload, DeliverAt: tm.Deadline})
	}
	return req, nil
}
