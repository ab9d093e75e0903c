package evolution

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	edav1 "github.com/protoc-gen-eda/eda/schemas/eda/v1"
)

// This file holds the LINT rules: conventions of eda annotations that keep
// an event-driven schema readable and its stored events easy to evolve.
// Unlike the breaking rules they look at one version of a schema.

// CategoryLint rules check the conventions of one schema version: names,
// owners and type names of events and commands. eda lint applies them; the
// breaking categories are for eda breaking.
const CategoryLint Category = "LINT"

// Lint rule IDs. Each is documented in LintRules.
const (
	EventNamePastTense    = "EVENT_NAME_PAST_TENSE"
	CommandNameImperative = "COMMAND_NAME_IMPERATIVE"
	EventHasOwner         = "EVENT_HAS_OWNER"
	EventTypeExplicit     = "EVENT_TYPE_EXPLICIT"
	EventTypeUnversioned  = "EVENT_TYPE_UNVERSIONED"
)

// LintRules is the catalogue of lint rules, in the order Lint reports a
// message's findings at one position. Every rule can be switched off with
// LintConfig.Disable or, on one message, with a leading comment
// `// eda:lint:ignore RULE_ID` (buf's `// buf:lint:ignore RULE_ID` works too).
var LintRules = []Rule{
	{EventNamePastTense, CategoryLint, `An event's message name does not end in a past-tense verb. An event
records a fact that happened; naming it in the past tense (OrderPlaced,
PaymentDeclined, ItemsShipped, BookWritten) tells it from the command that
asked for it (PlaceOrder) in every handler, topic and stored row.

The check looks at the last word of the CamelCase name, after dropping a
version suffix (OrderPlacedV2): it passes when the word ends in -ed (except
words such as Speed, Feed, Embed or Hundred that only look like it), is an
irregular past form (Sent, Paid, Built, Written, Begun, Held, Sold, Lost,
Read, Reset...), possibly with a prefix (Prepaid, Rewritten, Withheld,
Undone), or is one of a few adjectives that state a fact reached
(Unavailable, Overdue, Ready, Full, Empty, Idle). A name ending in Event is
reported with a hint to drop the suffix.

Fix: rename the event after what happened (Order -> OrderPlaced, OrderUpdate
-> OrderUpdated). A rename is a breaking change once released: keep the old
type name in aliases. For a name the heuristic misjudges, write
// eda:lint:ignore EVENT_NAME_PAST_TENSE in the message's leading comment.`},
	{CommandNameImperative, CategoryLint, `A command's message name does not read as an imperative. A command asks
for something to happen (PlaceOrder, CancelOrder, ShipItems); a name that
reads as an event makes handlers and topics ambiguous. To keep false
positives rare, only three shapes are reported, each certain:
- the name ends in Command or Cmd (PlaceOrderCommand): the annotation already
  says it is a command, and the type name is written in every envelope;
- its first word is a past form that is not also a present one
  (PlacedOrder, CancelledOrder): a command is not a fact;
- its last word is past tense (OrderPlaced) and its first word is not one of
  the verbs that take a state as object (Mark, Set, Flag, Retry, Delete,
  Restore, Approve, Confirm...; so MarkOrderShipped and RetryFailed pass).
Names that merely start with an unknown word are not reported: a list of
verbs can never be complete.

Fix: name the command verb first, after what it asks for (OrderPlaced as a
command -> PlaceOrder). If the message is in fact an event, annotate it as
one.`},
	{EventHasOwner, CategoryLint, `An event has no owner: no aggregate, no owner of its own and no owner
for its file. An event has exactly one writer, whose consent every change
to it needs, since its consumers and its stored history outlive any one
deploy. An event of an aggregate is owned by the aggregate's service.

Fix: set the aggregate, the event's owner, or the file's owner:
  option (eda.v1.file).owner = "team-checkout";
  option (eda.v1.message).event = {owner: "team-payments"};`},
	{EventTypeExplicit, CategoryLint, `An event in a versioned proto package (shop.orders.v1) sets no explicit
type, so its type name is its full name, package version included. Every
stored event carries that name; when the package moves to v2, every event
needs the old name as an alias, forever. An explicit type, set before the
first release, lets the package move freely.

Fix: set a type without the package version:
  option (eda.v1.message).event = {aggregate: "Order" type: "shop.OrderPlaced"};
Events of unversioned packages are not reported.`},
	{EventTypeUnversioned, CategoryLint, `An event's or command's explicit type names a package version
(shop.v1.OrderPlaced). The version of a payload is the envelope's version
field; a type name holding the package version misleads once the package
moves to v2, and invites renaming the type, which stored events forbid.

Fix: drop the version segment (type: "shop.OrderPlaced") before the first
release; once released, keep the type name as it is (renaming it needs an
alias) and switch this rule off for it with
// eda:lint:ignore EVENT_TYPE_UNVERSIONED.`},
}

// LintConfig chooses which lint rules apply.
type LintConfig struct {
	// Disable lists rule IDs (of LintRules) that are not applied. Unknown
	// IDs are ignored; a command line should reject them.
	Disable []string
	// DisallowCommentIgnores makes Lint report elements whose leading
	// comment says `eda:lint:ignore RULE_ID`, as buf.yaml's
	// lint.disallow_comment_ignores does for buf's own rules.
	DisallowCommentIgnores bool
}

// Lint applies LintRules to the files of s (not to their imports) and returns
// the findings, sorted by file, position, rule and message. A finding points
// at the offending element: an event's or command's name for the naming
// rules, its (eda.v1.message) option for EVENT_HAS_OWNER and
// EVENT_TYPE_EXPLICIT, its type for EVENT_TYPE_UNVERSIONED; Element is the
// message.
//
// A rule is skipped on a message whose leading comment, or that of the
// option the finding points at, holds a line
// `eda:lint:ignore RULE_ID` or `buf:lint:ignore RULE_ID` (several IDs may
// follow, separated by spaces or commas; text after them is a free reason,
// as in `eda:lint:ignore EVENT_HAS_OWNER: owned by the platform`).
func Lint(s *Schema, cfg LintConfig) []Finding {
	if s == nil {
		return nil
	}
	l := &linter{cfg: cfg}
	for _, f := range s.Files {
		fileOwner := fileOptions(f).GetOwner()
		walkMessages(f.Messages(), func(m protoreflect.MessageDescriptor) {
			if !m.IsMapEntry() {
				l.message(m, fileOwner)
			}
		})
	}
	slices.SortFunc(l.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col),
			cmp.Compare(lintRuleIndex(a.Rule), lintRuleIndex(b.Rule)), cmp.Compare(a.Message, b.Message))
	})
	return l.findings
}

func lintRuleIndex(id string) int {
	return slices.IndexFunc(LintRules, func(r Rule) bool { return r.ID == id })
}

// fileOptions returns f's eda.v1 file options, or nil; see messageOptions.
func fileOptions(f protoreflect.FileDescriptor) *edav1.FileOptions {
	opts, ok := reparse(f.Options())
	if !ok || !proto.HasExtension(opts, edav1.E_File) {
		return nil
	}
	v, _ := proto.GetExtension(opts, edav1.E_File).(*edav1.FileOptions)
	return v
}

type linter struct {
	cfg      LintConfig
	findings []Finding
}

// message applies the lint rules to m, an event or a command.
func (l *linter) message(m protoreflect.MessageDescriptor, fileOwner string) {
	opts := messageOptions(m)
	switch {
	case opts.GetEvent() != nil:
		e := opts.GetEvent()
		if msg := eventNameProblem(string(m.Name())); msg != "" {
			l.report(m, namePath(), EventNamePastTense, "Event %q %s", m.FullName(), msg)
		}
		if e.GetOwner() == "" && e.GetAggregate() == "" && fileOwner == "" {
			l.report(m, kindPath(eventKindField), EventHasOwner,
				`Event %q has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`,
				m.FullName())
		}
		if e.GetType() == "" && versionedPackage(m.ParentFile().Package()) {
			l.report(m, kindPath(eventKindField), EventTypeExplicit,
				"Event %q has no explicit type, so its type name is %q, package version included: set a type without it, like {type: %q}, before the first release.",
				m.FullName(), m.FullName(), suggestedType(m))
		}
		l.typeVersion(m, "Event", typePath(eventKindField, eventTypeField), e.GetType())
	case opts.GetCommand() != nil:
		if msg := commandNameProblem(string(m.Name())); msg != "" {
			l.report(m, namePath(), CommandNameImperative, "Command %q %s", m.FullName(), msg)
		}
		l.typeVersion(m, "Command", typePath(commandKindField, commandTypeField), opts.GetCommand().GetType())
	}
}

// typeVersion applies EVENT_TYPE_UNVERSIONED to an explicit type.
func (l *linter) typeVersion(m protoreflect.MessageDescriptor, subject string, at []int32, typeName string) {
	if typeName == "" {
		return
	}
	for _, seg := range strings.FieldsFunc(typeName, func(r rune) bool { return r == '.' || r == '/' }) {
		if packageVersion.MatchString(seg) {
			l.report(m, at, EventTypeUnversioned,
				"%s %q has type %q, which names package version %q: the payload's version is the envelope's; drop %q from the type before the first release.",
				subject, m.FullName(), typeName, seg, seg)
			return
		}
	}
}

// packageVersion matches a package version segment as buf's
// PACKAGE_VERSION_SUFFIX rule knows them: v1, v2beta1, v1p1alpha.
var packageVersion = regexp.MustCompile(`^v\d+(p\d+)?((alpha|beta)\d*)?$`)

func versionedPackage(pkg protoreflect.FullName) bool {
	return packageVersion.MatchString(string(pkg.Name()))
}

// suggestedType is m's full name without its package's version segments.
func suggestedType(m protoreflect.MessageDescriptor) string {
	var parts []string
	for _, seg := range strings.Split(string(m.FullName()), ".") {
		if !packageVersion.MatchString(seg) {
			parts = append(parts, seg)
		}
	}
	return strings.Join(parts, ".")
}

// Field numbers of DescriptorProto and of the eda.v1 options, for the
// source paths findings point at.
const (
	descriptorNameField    = 1 // DescriptorProto.name
	descriptorOptionsField = 7 // DescriptorProto.options
)

var (
	edaMessageExtension = int32(edav1.E_Message.TypeDescriptor().Number())
	eventKindField      = optionNumber(&edav1.MessageOptions{}, "event")
	commandKindField    = optionNumber(&edav1.MessageOptions{}, "command")
	eventTypeField      = optionNumber(&edav1.EventOptions{}, "type")
	commandTypeField    = optionNumber(&edav1.CommandOptions{}, "type")
)

func optionNumber(m proto.Message, name protoreflect.Name) int32 {
	return int32(m.ProtoReflect().Descriptor().Fields().ByName(name).Number())
}

// namePath, kindPath and typePath are source paths relative to a message's:
// its name, its (eda.v1.message).event or .command option, and that
// option's type.
func namePath() []int32           { return []int32{descriptorNameField} }
func kindPath(kind int32) []int32 { return []int32{descriptorOptionsField, edaMessageExtension, kind} }
func typePath(kind, field int32) []int32 {
	return []int32{descriptorOptionsField, edaMessageExtension, kind, field}
}

// report adds a finding on m at the source location sub (relative to m's),
// or at the longest prefix of it the source has: protoc and protocompile
// record an option written as a message literal, {type: "x"}, as a whole.
// Disabled rules and rules ignored by a comment are not reported.
func (l *linter) report(m protoreflect.MessageDescriptor, sub []int32, rule, format string, args ...any) {
	if slices.Contains(l.cfg.Disable, rule) {
		return
	}
	file := m.ParentFile()
	locs := file.SourceLocations()
	own := locs.ByDescriptor(m)
	finding := Finding{Rule: rule, Message: fmt.Sprintf(format, args...), Element: m}
	if len(own.Path) == 0 {
		// No source info: the message's position is all there is.
		finding.File, finding.Line, finding.Col = position(m)
		l.findings = append(l.findings, finding)
		return
	}
	at := own
	full := append(slices.Clone(own.Path), sub...)
	for n := len(full); n > len(own.Path); n-- {
		if loc := locs.ByPath(full[:n]); len(loc.Path) > 0 {
			at = loc
			break
		}
	}
	if !l.cfg.DisallowCommentIgnores && (ignores(own.LeadingComments, rule) || ignores(at.LeadingComments, rule)) {
		return
	}
	finding.File, finding.Line, finding.Col = file.Path(), at.StartLine+1, at.StartColumn+1
	l.findings = append(l.findings, finding)
}

// Prefixes of a comment line that switches lint rules off for an element:
// eda's own and buf's, so that one comment serves eda lint and buf lint
// running eda's plugin.
var ignorePrefixes = []string{"eda:lint:ignore", "buf:lint:ignore"}

// ignores reports whether comment has a line switching rule off.
func ignores(comment, rule string) bool {
	for line := range strings.Lines(comment) {
		line = strings.TrimSpace(line)
		for _, prefix := range ignorePrefixes {
			rest, ok := strings.CutPrefix(line, prefix)
			if !ok || (rest != "" && !unicode.IsSpace(rune(rest[0]))) {
				continue
			}
			for _, id := range strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
				id = strings.TrimRight(id, ":;.") // "RULE_ID: the reason"
				if !ruleIDShape.MatchString(id) {
					break // the free-text reason
				}
				if id == rule {
					return true
				}
			}
		}
	}
	return false
}

var ruleIDShape = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// eventNameProblem says what is wrong with an event named name, completing
// "Event X ...", or returns "" when it is named in the past tense.
func eventNameProblem(name string) string {
	words := nameWords(name)
	if len(words) == 0 {
		return ""
	}
	last := strings.ToLower(words[len(words)-1])
	switch {
	case pastTense(strings.ToLower(lastVerb(words))) || stateAdjectives[last]:
		return ""
	case (last == "event" || last == "evt") && len(words) > 1:
		return fmt.Sprintf("ends in %q: the annotation already says it is an event; drop the suffix and name it after what happened, in the past tense (OrderPlaced).", words[len(words)-1])
	}
	return fmt.Sprintf("is not named in the past tense: its last word %q is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).", words[len(words)-1])
}

// commandNameProblem says what is wrong with a command named name,
// completing "Command X ...", or returns "" when it is not one of the shapes
// COMMAND_NAME_IMPERATIVE reports.
func commandNameProblem(name string) string {
	words := nameWords(name)
	if len(words) == 0 {
		return ""
	}
	first, last := strings.ToLower(words[0]), strings.ToLower(words[len(words)-1])
	switch {
	case (last == "command" || last == "cmd") && len(words) > 1:
		return fmt.Sprintf("ends in %q: the annotation already says it is a command, and the name is in every envelope; drop the suffix (PlaceOrder).", words[len(words)-1])
	case pastTense(first) && !presentToo[first]:
		return fmt.Sprintf("starts with %q, a past form: a command asks for something to happen; start its name with the verb in the imperative (PlaceOrder).", words[0])
	case len(words) > 1 && pastTense(strings.ToLower(lastVerb(words))) && !stateVerbs[first]:
		return fmt.Sprintf("reads as an event: it ends in the past form %q; name the command after what it asks for, verb first (PlaceOrder), or annotate the message as an event.", lastVerb(words))
	}
	return ""
}

// nameWords splits a CamelCase message name into words, keeping acronyms
// whole (HTTPRequestSent: HTTP, Request, Sent) and digits with the word
// before them, and drops a trailing version word (OrderPlacedV2).
func nameWords(name string) []string {
	var words []string
	runes := []rune(name)
	start := 0
	for i := 1; i <= len(runes); i++ {
		boundary := i == len(runes) || runes[i] == '_'
		if !boundary && unicode.IsUpper(runes[i]) {
			prev := runes[i-1]
			nextLower := i+1 < len(runes) && unicode.IsLower(runes[i+1])
			boundary = unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower)
		}
		if boundary {
			if w := strings.Trim(string(runes[start:i]), "_"); w != "" {
				words = append(words, w)
			}
			start = i
		}
	}
	if n := len(words); n > 1 && versionWord.MatchString(words[n-1]) {
		words = words[:n-1]
	}
	if n := len(words); n > 0 {
		// OrderPlaced2: the digits are a version too.
		words[n-1] = strings.TrimRightFunc(words[n-1], unicode.IsDigit)
		if words[n-1] == "" {
			words = words[:n-1]
		}
	}
	return words
}

// lastVerb returns the last word of words, or the one before it when the
// last is the particle of a phrasal verb: UserSignedUp, OrderTimedOut.
func lastVerb(words []string) string {
	n := len(words)
	if particles[strings.ToLower(words[n-1])] && n > 1 {
		return words[n-2]
	}
	return words[n-1]
}

// particles complete phrasal verbs: SignedUp, LoggedIn, CheckedOut, PaidOff.
var particles = wordSet(`up out in off on down over back away through`)

var versionWord = regexp.MustCompile(`^[Vv]\d+$`)

// pastTense reports whether the lower-case word w is a past tense or past
// participle: an -ed form or an irregular one, possibly with a prefix.
func pastTense(w string) bool {
	if irregularPast[w] {
		return true
	}
	for _, p := range pastPrefixes {
		if rest, ok := strings.CutPrefix(w, p); ok && irregularPast[rest] && !notPast[w] {
			return true
		}
	}
	switch {
	case notPast[w] || len(w) <= len("bed") || !strings.HasSuffix(w, "ed"):
		return false
	case strings.HasSuffix(w, "eed"):
		// Speed, Feed, Need, Succeed, Exceed: present forms, but Agreed.
		return eedPast[w]
	}
	return true
}

// pastPrefixes may precede an irregular past form: Prepaid, Rewritten,
// Undone, Withheld, Overdrawn, Mislaid, Outsold, Upheld.
var pastPrefixes = []string{"re", "pre", "un", "over", "under", "mis", "out", "with", "up", "fore", "be"}

// irregularPast are the irregular past tenses and participles.
var irregularPast = wordSet(`
	arisen arose awoke awoken beaten became become began begun bent bet bitten bled blew blown
	bore born borne bought bound bred broadcast broke broken brought built burnt burst came cast
	caught chose chosen clung come crept cut dealt did done drawn dreamt drew driven drove drunk
	dug dwelt eaten fallen fed fell felt fled flew flown forbade forbidden forgave forgiven forgot
	forgotten forsaken fought found froze frozen gave given gone got gotten grew ground grown had heard
	held hid hidden hit hung hurt kept knelt knew known laid leapt learnt led left lent let lit lost
	made meant met mown outgrown overtaken paid proven put quit ran rang read rid ridden risen rode
	rose run sang sank sat seen sent set sewn shaken shed shone shook shot shown shrank shrunk
	shut slept slid slung smelt sold sought sown spat sped spelt spent spilt split spoilt spoke spoken
	sprang spread sprung stank stole stolen stood struck stuck stung sung sunk swept swore sworn swum
	swung taken taught thought threw thrown told took tore torn trod trodden understood undertaken
	was went wept were withdrawn woke woken won wore worn wound written wrote wrung`)

// presentToo are past forms that are also present forms, so that a command
// may start with them (ReadMessages, SetPrice, PutItem, ResetPassword).
var presentToo = wordSet(`
	bet broadcast burst cast come become cut found ground hit hurt let put quit read reset rid run
	rerun set shed shut split spread upset outrun overrun overcome preset bound wound`)

// notPast are words that end like a past form but are not one.
var notPast = wordSet(`
	embed hundred sacred kindred hatred shred sled naked wicked seabed hotbed sickbed flowerbed
	bobsled output outlet outbound upbound underground background foreground overground
	rebound present forecast`)

// eedPast are the past forms ending in -eed.
var eedPast = wordSet(`agreed disagreed freed guaranteed decreed refereed emceed`)

// stateAdjectives name a state an event reached without being a past form:
// SeatUnavailable, InvoiceOverdue, CartEmpty.
var stateAdjectives = wordSet(`available unavailable overdue due ready full empty idle`)

// stateVerbs are verbs, rarely nouns, that take a state as their object, so
// a command starting with one may end in a past form: MarkOrderShipped,
// RetryFailed, PurgeDeleted.
var stateVerbs = wordSet(`
	ack acknowledge accept approve clear confirm consider declare delete discard dismiss expire find
	flag get ignore keep list load make mark notify purge redeliver reject remove reopen reprocess
	republish reschedule resend restore resume retry revert set skip treat undo unmark`)

func wordSet(words string) map[string]bool {
	set := map[string]bool{}
	for _, w := range strings.Fields(words) {
		set[w] = true
	}
	return set
}
