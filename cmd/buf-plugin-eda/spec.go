package main

import (
	"context"
	"strings"
	"sync"

	"buf.build/go/bufplugin/check"
	"buf.build/go/bufplugin/descriptor"
	"buf.build/go/bufplugin/info"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/protoc-gen-eda/eda/evolution"
)

// Categories of the plugin's rules, for buf.yaml's use and except. They are
// prefixed so that they cannot be mistaken for buf's own categories.
const (
	categoryEvent = "EDA_EVENT"
	categoryLint  = "EDA_LINT"
)

// newSpec returns the plugin's rules: evolution's EVENT rules as breaking
// rules, and its lint rules.
func newSpec() *check.Spec {
	spec := &check.Spec{
		Categories: []*check.CategorySpec{
			{ID: categoryEvent, Purpose: "Checks that changes keep what the eda annotations make part of an event's or command's contract: type name, aggregate id, partition key, topic, meaning and version."},
			{ID: categoryLint, Purpose: "Checks the conventions of eda annotations: event and command names, event owners and type names."},
		},
		Info: &info.Spec{
			Documentation: "Runs the rules of eda breaking (EVENT category) and eda lint in buf breaking and buf lint.",
		},
		// Every rule handler of a request reads the same findings: Before
		// sets up one lazily computed set per request.
		Before: func(ctx context.Context, req check.Request) (context.Context, check.Request, error) {
			return context.WithValue(ctx, resultsKey{}, newResults(req)), req, nil
		},
	}
	for _, r := range evolution.Rules {
		if r.Category != evolution.CategoryEvent || historyOnly[r.ID] {
			continue
		}
		spec.Rules = append(spec.Rules, &check.RuleSpec{
			ID:          r.ID,
			CategoryIDs: []string{categoryEvent},
			Default:     true,
			Purpose:     purpose(r.Doc),
			Type:        check.RuleTypeBreaking,
			Handler:     handler(r.ID, func(res *results) []evolution.Finding { return res.breaking() }),
		})
	}
	for _, r := range evolution.LintRules {
		spec.Rules = append(spec.Rules, &check.RuleSpec{
			ID:          r.ID,
			CategoryIDs: []string{categoryLint},
			Default:     true,
			Purpose:     purpose(r.Doc),
			Type:        check.RuleTypeLint,
			Handler:     handler(r.ID, func(res *results) []evolution.Finding { return res.lint() }),
		})
	}
	return spec
}

// historyOnly are the EVENT rules that only evolution.CheckHistory applies,
// comparing several releases: buf breaking compares with one version, so
// registering them would list rules that never report.
var historyOnly = map[string]bool{
	evolution.FieldNumberNoReuse:     true,
	evolution.EnumValueNumberNoReuse: true,
}

// purpose is the first sentence of a rule's doc on one line, as buf wants a
// rule's purpose: capitalized and ending with a period.
func purpose(doc string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	if i := strings.Index(doc, ". "); i >= 0 {
		doc = doc[:i+1]
	}
	if !strings.HasSuffix(doc, ".") {
		doc += "."
	}
	return doc
}

type resultsKey struct{}

// results are the findings of one request, computed on first use: a
// request for lint rules never runs Check, and one for breaking rules never
// runs Lint.
type results struct {
	breaking func() []evolution.Finding
	lint     func() []evolution.Finding
}

func newResults(req check.Request) *results {
	return &results{
		breaking: sync.OnceValue(func() []evolution.Finding {
			return evolution.Check(schema(req.AgainstFileDescriptors()), schema(req.FileDescriptors()))
		}),
		lint: sync.OnceValue(func() []evolution.Finding {
			// Disabling and comment ignores are buf's business: it
			// filters annotations by its own configuration. eda's own
			// ignore comments still count, inside Lint.
			return evolution.Lint(schema(req.FileDescriptors()), evolution.LintConfig{})
		}),
	}
}

// schema builds a Schema of the files buf checks, leaving out imports, which
// a schema is not responsible for.
func schema(files []descriptor.FileDescriptor) *evolution.Schema {
	s := &evolution.Schema{}
	for _, f := range files {
		if !f.IsImport() {
			s.Files = append(s.Files, f.ProtoreflectFileDescriptor())
		}
	}
	return s
}

// handler reports the findings of rule id among those that get returns.
func handler(id string, get func(*results) []evolution.Finding) check.RuleHandler {
	return check.RuleHandlerFunc(func(ctx context.Context, w check.ResponseWriter, req check.Request) error {
		res, ok := ctx.Value(resultsKey{}).(*results)
		if !ok {
			res = newResults(req)
		}
		for _, f := range get(res) {
			if f.Rule == id {
				w.AddAnnotation(append(location(f), check.WithMessage(f.Message))...)
			}
		}
		return nil
	})
}

// location points an annotation where the finding does: at its element when
// the finding is at the element's start (every eda breaking finding), else
// at the source location inside the element starting at the finding's line
// and column (a lint finding's name or option); for a deleted file, at the
// previous declaration.
func location(f evolution.Finding) []check.AddAnnotationOption {
	if f.Element == nil {
		if f.Previous != nil {
			return []check.AddAnnotationOption{check.WithAgainstDescriptor(f.Previous)}
		}
		return []check.AddAnnotationOption{check.WithFileName(f.File)}
	}
	file := f.Element.ParentFile()
	locs := file.SourceLocations()
	own := locs.ByDescriptor(f.Element)
	if len(own.Path) == 0 || (own.StartLine+1 == f.Line && own.StartColumn+1 == f.Col) {
		return []check.AddAnnotationOption{check.WithDescriptor(f.Element)}
	}
	// The most specific location starting there: an option's field rather
	// than the option statement, whose path several statements share.
	var best protoreflect.SourcePath
	for i := range locs.Len() {
		loc := locs.Get(i)
		if loc.StartLine+1 == f.Line && loc.StartColumn+1 == f.Col && hasPrefix(loc.Path, own.Path) && len(loc.Path) > len(best) {
			best = loc.Path
		}
	}
	if best == nil {
		return []check.AddAnnotationOption{check.WithDescriptor(f.Element)}
	}
	return []check.AddAnnotationOption{check.WithFileNameAndSourcePath(file.Path(), best)}
}

func hasPrefix(p, prefix protoreflect.SourcePath) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}
