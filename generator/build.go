package generator

import (
	"cmp"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/protoc-gen-eda/eda/generator/model"
	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// Build reads the annotated messages of every file in the plugin request and
// returns one model.File per file to generate, in request order. It reports
// every problem it finds as Errors; then it returns no files at all.
func Build(plugin *protogen.Plugin) ([]*model.File, error) {
	b := &builder{
		byName:  map[protoreflect.FullName]*annotated{},
		idents:  map[string]map[string]string{},
		byType:  map[string]*annotated{},
		byTopic: map[string]topicUse{},
	}
	for _, f := range plugin.Files {
		b.index(f, f.Messages)
	}
	for _, f := range plugin.Files {
		if f.Generate {
			b.declareProtocGenGo(f)
		}
	}
	var files []*model.File
	byFile := map[*protogen.File]*model.File{}
	for _, f := range plugin.Files {
		if f.Generate {
			byFile[f] = b.file(f)
			files = append(files, byFile[f])
		}
	}
	// Projections and sagas last: they refer to events and commands of any
	// generated file, whose models now exist.
	for _, a := range b.ordered {
		out := byFile[a.file]
		switch a.kind() {
		case "projection":
			if p := b.projection(a); p != nil {
				out.Projections = append(out.Projections, p)
			}
		case "saga":
			if s := b.saga(a, fileOptions(a.file)); s != nil {
				out.Sagas = append(out.Sagas, s)
			}
		}
	}
	for _, f := range files {
		for _, agg := range f.Aggregates {
			b.checkSubscription(agg, agg.Events)
			b.checkSubscription(agg, agg.Commands)
		}
	}
	b.checkIdents(files)
	if len(b.errs) > 0 {
		return nil, b.errs.sorted()
	}
	return files, nil
}

type builder struct {
	errs   Errors
	byName map[protoreflect.FullName]*annotated
	// idents maps a Go import path to its declared identifiers and who
	// declares each, to catch clashes before the compiler does.
	idents  map[string]map[string]string
	byType  map[string]*annotated
	byTopic map[string]topicUse
	// inFiles records, per generated file, the annotated messages in
	// descriptor order.
	ordered []*annotated
}

type topicUse struct {
	kind      model.Kind
	aggregate string // full name of the owning aggregate, "" if standalone
	by        *annotated
}

// annotated is a message carrying eda.v1 options.
type annotated struct {
	file *protogen.File
	msg  *protogen.Message
	opts *edav1.MessageOptions

	agg *model.Aggregate // set for aggregates
	m   *model.Message   // set for events and commands of generated files
}

func (a *annotated) kind() string {
	switch a.opts.GetKind().(type) {
	case *edav1.MessageOptions_Event:
		return "event"
	case *edav1.MessageOptions_Command:
		return "command"
	case *edav1.MessageOptions_Aggregate:
		return "aggregate"
	case *edav1.MessageOptions_Projection:
		return "projection"
	case *edav1.MessageOptions_Saga:
		return "saga"
	}
	return "message"
}

func (a *annotated) subject() string { return a.kind() + " " + string(a.msg.Desc.Name()) }

func (a *annotated) where() string {
	file, line, col := position(a.msg.Desc)
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

func (b *builder) errorf(d protoreflect.Descriptor, subject string, path []int32, format string, args ...any) {
	file, line, col := position(d, path...)
	b.errs = append(b.errs, &Error{File: file, Line: line, Col: col, Subject: subject, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) index(f *protogen.File, msgs []*protogen.Message) {
	for _, m := range msgs {
		if opts := messageOptions(m); opts != nil && opts.GetKind() != nil {
			a := &annotated{file: f, msg: m, opts: opts}
			b.byName[m.Desc.FullName()] = a
			if f.Generate {
				b.ordered = append(b.ordered, a)
			}
		}
		b.index(f, m.Messages)
	}
}

// resolve finds the annotated message a reference names: relative to the
// file's package first, then as a full name (a leading dot forces that).
func (b *builder) resolve(from *protogen.File, ref string) (*annotated, bool) {
	if full, ok := strings.CutPrefix(ref, "."); ok {
		a, found := b.byName[protoreflect.FullName(full)]
		return a, found
	}
	if pkg := from.Desc.Package(); pkg != "" {
		if a, ok := b.byName[pkg+"."+protoreflect.FullName(ref)]; ok {
			return a, true
		}
	}
	a, ok := b.byName[protoreflect.FullName(ref)]
	return a, ok
}

var (
	typeNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-/]*$`)
	topicPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)
)

func (b *builder) file(f *protogen.File) *model.File {
	out := &model.File{
		Source:        f.Desc.Path(),
		GoPackageName: string(f.GoPackageName),
		GoImportPath:  string(f.GoImportPath),
		Filename:      f.GeneratedFilenamePrefix,
	}
	defaults := fileOptions(f)
	b.checkFieldRoles(f, f.Messages)
	// Aggregates first, so that events and commands of the same file find them.
	for _, a := range b.ordered {
		if a.file == f && a.kind() == "aggregate" {
			b.aggregate(a)
			out.Aggregates = append(out.Aggregates, a.agg)
		}
	}
	for _, a := range b.ordered {
		if a.file != f {
			continue
		}
		switch a.kind() {
		case "event", "command":
			if m := b.message(a, defaults); m != nil {
				out.Messages = append(out.Messages, m)
			}
		}
	}
	return out
}

func (b *builder) aggregate(a *annotated) *model.Aggregate {
	if a.agg != nil {
		return a.agg
	}
	opts := a.opts.GetAggregate()
	typeName := cmp.Or(opts.GetType(), string(a.msg.Desc.FullName()))
	events, commands := defaultAggregateTopics(typeName)
	agg := &model.Aggregate{
		GoIdent:       goIdent(a.file, a.msg.GoIdent),
		FullName:      string(a.msg.Desc.FullName()),
		Doc:           doc(a.msg.Comments.Leading, a.msg.Desc.Options()),
		TypeName:      typeName,
		EventsTopic:   cmp.Or(opts.GetEventsTopic(), events),
		CommandsTopic: cmp.Or(opts.GetCommandsTopic(), commands),
		Snapshot:      model.Snapshot{Every: opts.GetSnapshot().GetEvery(), Version: max(opts.GetSnapshot().GetVersion(), 1)},
		Names:         aggregateNames(a.msg.GoIdent.GoName, typeName),
	}
	a.agg = agg
	path := []int32{messageOptionsPath, edaExtensionNumber, optAggregate}
	if !typeNamePattern.MatchString(typeName) {
		b.errorf(a.msg.Desc, a.subject(), append(path, optType), "type %q is not a valid type name: use letters, digits, '.', '_', '-' and '/'", typeName)
	}
	for _, t := range []struct {
		topic string
		field int32
	}{{agg.EventsTopic, optAggTopic}, {agg.CommandsTopic, optAggCmdTop}} {
		if !topicPattern.MatchString(t.topic) {
			b.errorf(a.msg.Desc, a.subject(), append(path, t.field), "topic %q is not a valid topic name: use letters, digits, '.', '_' and '-'", t.topic)
		}
	}
	if agg.EventsTopic == agg.CommandsTopic {
		b.errorf(a.msg.Desc, a.subject(), path, "events and commands share topic %q: a topic carries events or commands, not both", agg.EventsTopic)
	}
	return agg
}

func (b *builder) message(a *annotated, defaults *edav1.FileOptions) *model.Message {
	kind, o := model.Event, messageSettings(a.opts)
	optField := int32(optEvent)
	if a.kind() == "command" {
		kind, optField = model.Command, optCommand
	}
	path := []int32{messageOptionsPath, edaExtensionNumber, optField}
	subject := a.subject()
	typeName := cmp.Or(o.typeName, string(a.msg.Desc.FullName()))
	m := &model.Message{
		Kind:     kind,
		GoIdent:  goIdent(a.file, a.msg.GoIdent),
		FullName: string(a.msg.Desc.FullName()),
		Doc:      doc(a.msg.Comments.Leading, a.msg.Desc.Options()),
		TypeName: typeName,
		Aliases:  o.aliases,
		Version:  max(o.version, 1),
	}
	a.m = m
	for i, name := range append([]string{typeName}, o.aliases...) {
		p := append(path, optType)
		if i > 0 {
			p = append(path, optAliases, int32(i-1))
		}
		if !typeNamePattern.MatchString(name) {
			b.errorf(a.msg.Desc, subject, p, "type %q is not a valid type name: use letters, digits, '.', '_', '-' and '/'", name)
			continue
		}
		if prev, dup := b.byType[name]; dup {
			b.errorf(a.msg.Desc, subject, p, "type name %q is already used by %s (%s): every event and command needs its own type name", name, prev.subject(), prev.where())
			continue
		}
		b.byType[name] = a
	}

	// The aggregate, and through it the default topic and subject.
	var aggIDField string
	if o.aggregate != "" {
		ref, ok := b.resolve(a.file, o.aggregate)
		switch {
		case !ok:
			b.errorf(a.msg.Desc, subject, append(path, optAggRef), "aggregate %q is not a known message: name a message annotated with (eda.v1.message).aggregate, relative to package %s or fully qualified", o.aggregate, a.file.Desc.Package())
		case ref.kind() != "aggregate":
			b.errorf(a.msg.Desc, subject, append(path, optAggRef), "aggregate %q names %s, which is not an aggregate: annotate it with (eda.v1.message).aggregate", o.aggregate, ref.subject())
		case !ref.file.Generate:
			b.errorf(a.msg.Desc, subject, append(path, optAggRef), "aggregate %s is declared in %s, which is not being generated: generate the aggregate's file together with its events and commands (with buf, whose default runs a plugin once per directory, keep them in one directory or set strategy: all)", ref.msg.Desc.FullName(), ref.file.Desc.Path())
		case ref.file.GoImportPath != a.file.GoImportPath:
			b.errorf(a.msg.Desc, subject, append(path, optAggRef), "aggregate %s is in Go package %s, this %s in %s: the aggregate's generated code adds methods to its events and commands, so give them the aggregate's go_package", ref.msg.Desc.FullName(), ref.file.GoImportPath, kind, a.file.GoImportPath)
		default:
			m.Aggregate = b.aggregate(ref)
			if kind == model.Event {
				m.Aggregate.Events = append(m.Aggregate.Events, m)
			} else {
				m.Aggregate.Commands = append(m.Aggregate.Commands, m)
			}
			if f := roleField(ref.msg, (*edav1.FieldOptions).GetAggregateId); f != nil {
				aggIDField = string(f.Desc.Name())
			}
		}
	}
	switch {
	case m.Aggregate != nil:
		topicField := "events_topic"
		m.Topic = m.Aggregate.EventsTopic
		if kind == model.Command {
			m.Topic, topicField = m.Aggregate.CommandsTopic, "commands_topic"
		}
		if o.topic != "" && o.topic != m.Topic {
			b.errorf(a.msg.Desc, subject, append(path, optTopic), "topic %q differs from aggregate %s's %s %q: one handler reads all of an aggregate's %ss, so set %s on the aggregate instead", o.topic, m.Aggregate.FullName, topicField, m.Topic, kind, topicField)
		}
	case o.topic != "":
		m.Topic = o.topic
	default:
		m.Topic = typeName
	}
	if !topicPattern.MatchString(m.Topic) {
		b.errorf(a.msg.Desc, subject, append(path, optTopic), "topic %q is not a valid topic name: use letters, digits, '.', '_' and '-'", m.Topic)
	} else {
		b.useTopic(a, m, append(path, optTopic))
	}

	// Envelope fields.
	marked := roleField(a.msg, (*edav1.FieldOptions).GetAggregateId)
	if marked != nil {
		// An invalid marked field is reported by checkFieldRoles.
		m.Subject = envelopeField(marked)
	} else if aggIDField != "" {
		for _, f := range a.msg.Fields {
			if string(f.Desc.Name()) == aggIDField && envelopeField(f) != nil {
				m.Subject = envelopeField(f)
			}
		}
	}
	if m.Aggregate != nil && m.Subject == nil && marked == nil {
		hint := "mark its field with [(eda.v1.field).aggregate_id = true]"
		if aggIDField != "" {
			hint = fmt.Sprintf("add a field %q like %s's, or mark one with [(eda.v1.field).aggregate_id = true]", aggIDField, m.Aggregate.FullName)
		}
		b.errorf(a.msg.Desc, subject, append(path, optAggRef), "belongs to aggregate %s but has no aggregate id field: %s", m.Aggregate.FullName, hint)
	}
	if f := roleField(a.msg, (*edav1.FieldOptions).GetPartitionKey); f != nil {
		m.PartitionKey = envelopeField(f)
	}
	if f := roleField(a.msg, (*edav1.FieldOptions).GetCorrelationId); f != nil {
		m.Correlation = envelopeField(f)
	}
	m.Delivery = b.delivery(a, subject, path, defaults.GetDelivery(), o.delivery)
	m.RetryOnConflict = o.retryOnConflict
	if o.retryOnConflict && o.aggregate == "" {
		b.errorf(a.msg.Desc, subject, append(path, optRetry), "retry_on_conflict is set but the command has no aggregate: only an aggregate's repository runs commands again; set aggregate or remove it")
	}
	m.Names = messageNames(kind, a.msg.GoIdent.GoName, typeName, m.Aggregate == nil)
	return m
}

// settings are the fields EventOptions and CommandOptions share.
type settings struct {
	typeName, topic, aggregate string
	aliases                    []string
	version                    uint32
	delivery                   *edav1.DeliveryPolicy
	retryOnConflict            bool
}

func messageSettings(opts *edav1.MessageOptions) settings {
	if e := opts.GetEvent(); e != nil {
		return settings{e.GetType(), e.GetTopic(), e.GetAggregate(), e.GetAliases(), e.GetVersion(), e.GetDelivery(), false}
	}
	c := opts.GetCommand()
	return settings{c.GetType(), c.GetTopic(), c.GetAggregate(), c.GetAliases(), c.GetVersion(), c.GetDelivery(), c.GetRetryOnConflict()}
}

// useTopic enforces the topic rules: a topic carries events or commands, not
// both, and belongs to at most one aggregate.
func (b *builder) useTopic(a *annotated, m *model.Message, path []int32) {
	owner := ""
	if m.Aggregate != nil {
		owner = m.Aggregate.FullName
	}
	prev, used := b.byTopic[m.Topic]
	if !used {
		b.byTopic[m.Topic] = topicUse{kind: m.Kind, aggregate: owner, by: a}
		return
	}
	switch {
	case prev.kind != m.Kind:
		b.errorf(a.msg.Desc, a.subject(), path, "topic %q clashes with %s (%s): a topic carries events or commands, not both", m.Topic, prev.by.subject(), prev.by.where())
	case prev.aggregate != owner && prev.aggregate != "" && owner != "":
		b.errorf(a.msg.Desc, a.subject(), path, "topic %q clashes with %s (%s) of aggregate %s: give each aggregate its own topic", m.Topic, prev.by.subject(), prev.by.where(), prev.aggregate)
	}
}

// delivery merges the file's default policy with the message's, field by
// field, and checks the durations.
func (b *builder) delivery(a *annotated, subject string, path []int32, file, msg *edav1.DeliveryPolicy) model.Delivery {
	var d model.Delivery
	for _, p := range []*edav1.DeliveryPolicy{file, msg} {
		if p == nil {
			continue
		}
		d.MaxAttempts = cmp.Or(p.GetMaxAttempts(), d.MaxAttempts)
		d.BackoffMultiplier = cmp.Or(p.GetBackoffMultiplier(), d.BackoffMultiplier)
		d.DeadLetterTopic = cmp.Or(p.GetDeadLetterTopic(), d.DeadLetterTopic)
		d.MaxInFlight = cmp.Or(p.GetMaxInFlight(), d.MaxInFlight)
		d.MaxPerSecond = cmp.Or(p.GetMaxPerSecond(), d.MaxPerSecond)
		d.ConsumerGroup = cmp.Or(p.GetConsumerGroup(), d.ConsumerGroup)
		if p.GetOrdering() != edav1.Ordering_ORDERING_UNSPECIFIED {
			d.Ordering = strings.ToLower(strings.TrimPrefix(p.GetOrdering().String(), "ORDERING_"))
		}
		for _, dur := range []struct {
			text string
			dst  *time.Duration
			name string
		}{{p.GetInitialBackoff(), &d.InitialBackoff, "initial_backoff"}, {p.GetMaxBackoff(), &d.MaxBackoff, "max_backoff"}, {p.GetDedupWindow(), &d.DedupWindow, "dedup_window"}} {
			if dur.text == "" {
				continue
			}
			v, err := time.ParseDuration(dur.text)
			if err != nil || v < 0 {
				b.errorf(a.msg.Desc, subject, append(path, optDelivery), "delivery %s %q is not a duration: write a Go duration such as \"250ms\", \"5s\" or \"1h\"", dur.name, dur.text)
				continue
			}
			*dur.dst = v
		}
	}
	if d.BackoffMultiplier != 0 && d.BackoffMultiplier < 1 {
		b.errorf(a.msg.Desc, subject, append(path, optDelivery), "delivery backoff_multiplier %g is below 1: waits between retries must not shrink", d.BackoffMultiplier)
	}
	if d.DeadLetterTopic != "" && !topicPattern.MatchString(d.DeadLetterTopic) {
		b.errorf(a.msg.Desc, subject, append(path, optDelivery), "dead_letter_topic %q is not a valid topic name", d.DeadLetterTopic)
	}
	return d
}

func goIdent(f *protogen.File, id protogen.GoIdent) model.GoIdent {
	return model.GoIdent{GoName: id.GoName, GoImportPath: string(id.GoImportPath), GoPackageName: string(f.GoPackageName)}
}

// doc converts a proto leading comment into lines, and reads `deprecated`.
func doc(leading protogen.Comments, opts protoreflect.ProtoMessage) model.Doc {
	var d model.Doc
	if text := strings.TrimRight(string(leading), "\n"); strings.TrimSpace(text) != "" {
		for _, line := range strings.Split(text, "\n") {
			d.Leading = append(d.Leading, strings.TrimRight(strings.TrimPrefix(line, " "), " \t"))
		}
	}
	if o, ok := opts.(*descriptorpb.MessageOptions); ok {
		d.Deprecated = o.GetDeprecated()
	}
	return d
}

func cmpOr[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func article(kind string) string {
	if kind == "message" {
		return "a message with no eda.v1 role"
	}
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// checkSubscription reports an aggregate's events (or commands) that
// disagree on a setting of the subscription they share: one handler reads
// them all, so consumer group, rate, in-flight bound, ordering and
// deduplication are one value.
func (b *builder) checkSubscription(agg *model.Aggregate, msgs []*model.Message) {
	if len(msgs) < 2 {
		return
	}
	type sub struct {
		group               string
		perSecond, inFlight uint32
		ordering            string
		dedup               time.Duration
	}
	of := func(d model.Delivery) sub {
		return sub{d.ConsumerGroup, d.MaxPerSecond, d.MaxInFlight, d.Ordering, d.DedupWindow}
	}
	first := msgs[0]
	for _, m := range msgs[1:] {
		if of(m.Delivery) != of(first.Delivery) {
			a := b.byName[protoreflect.FullName(m.FullName)]
			b.errorf(a.msg.Desc, a.subject(), []int32{messageOptionsPath, edaExtensionNumber}, "delivery differs from %s's in consumer_group, max_per_second, max_in_flight, ordering or dedup_window: one handler reads every %s of aggregate %s, so set these in the file's delivery or alike on each", first.GoIdent.GoName, m.Kind, agg.FullName)
		}
	}
}
