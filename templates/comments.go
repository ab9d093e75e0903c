package templates

import (
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// commenter is what jennifer can attach comments to: a file or a group.
type commenter interface {
	Comment(string) *jen.Statement
}

// comment writes a doc comment: the summary, then the proto comment, then
// the Deprecated paragraph, separated by blank comment lines.
func comment(g commenter, summary string, d model.Doc) {
	paragraphs := [][]string{wrap(summary)}
	if len(d.Leading) > 0 {
		paragraphs = append(paragraphs, d.Leading)
	}
	if d.Deprecated {
		paragraphs = append(paragraphs, []string{"Deprecated: do not use."})
	}
	for i, p := range paragraphs {
		if i > 0 {
			g.Comment("")
		}
		for _, line := range p {
			g.Comment(line)
		}
	}
}

// deprecatedOnly keeps the deprecation of a doc and drops its text, for
// declarations where repeating the proto comment would be noise.
func deprecatedOnly(d model.Doc) model.Doc {
	return model.Doc{Deprecated: d.Deprecated}
}

// wrap folds a sentence into comment lines of at most 80 columns.
func wrap(s string) []string {
	const width = 77 // 80 minus "// "
	var lines []string
	var line strings.Builder
	for _, w := range strings.Fields(s) {
		if line.Len() > 0 && line.Len()+1+len(w) > width {
			lines = append(lines, line.String())
			line.Reset()
		}
		if line.Len() > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(w)
	}
	if line.Len() > 0 {
		lines = append(lines, line.String())
	}
	return lines
}

// withArticle puts "a" or "an" before a name, by its first letter:
// "an OrderPlaced", "a PaymentDeclined".
func withArticle(name string) string {
	if name != "" && strings.ContainsRune("AEIOUaeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}
