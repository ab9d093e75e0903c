package generator

import (
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/protoc-gen-eda/eda/generator/model"
)

// Generated identifiers must not clash with protoc-gen-go's or with each
// other within a Go package; this file finds clashes before the compiler does.

// declareProtocGenGo records the identifiers protoc-gen-go declares for f.
func (b *builder) declareProtocGenGo(f *protogen.File) {
	pkg := b.pkgIdents(string(f.GoImportPath))
	pkg[f.GoDescriptorIdent.GoName] = "protoc-gen-go's descriptor of " + f.Desc.Path()
	var walkEnums func([]*protogen.Enum)
	walkEnums = func(es []*protogen.Enum) {
		for _, e := range es {
			pkg[e.GoIdent.GoName] = "enum " + string(e.Desc.FullName())
			for _, v := range e.Values {
				pkg[v.GoIdent.GoName] = "enum value " + string(v.Desc.FullName())
			}
		}
	}
	var walk func([]*protogen.Message)
	walk = func(ms []*protogen.Message) {
		for _, m := range ms {
			pkg[m.GoIdent.GoName] = "message " + string(m.Desc.FullName())
			for _, fld := range m.Fields {
				if fld.Oneof != nil && !fld.Oneof.Desc.IsSynthetic() {
					pkg[fld.GoIdent.GoName] = "oneof wrapper of field " + string(fld.Desc.FullName())
				}
			}
			walkEnums(m.Enums)
			walk(m.Messages)
		}
	}
	walkEnums(f.Enums)
	walk(f.Messages)
}

func (b *builder) pkgIdents(importPath string) map[string]string {
	if b.idents[importPath] == nil {
		b.idents[importPath] = map[string]string{}
	}
	return b.idents[importPath]
}

// checkIdents reports generated identifiers that clash with protoc-gen-go's
// or with each other within a Go package.
func (b *builder) checkIdents(files []*model.File) {
	declare := func(pkgPath string, ids []string, a *annotated) {
		pkg := b.pkgIdents(pkgPath)
		for _, id := range ids {
			if prev, taken := pkg[id]; taken {
				b.errorf(a.msg.Desc, a.subject(), nil, "generated identifier %s clashes with %s in Go package %s: rename one of the messages", id, prev, pkgPath)
				continue
			}
			pkg[id] = "the generated " + id + " of " + a.subject()
		}
	}
	for _, f := range files {
		for _, m := range f.Messages {
			declare(f.GoImportPath, messageIdents(m), b.byName[protoreflect.FullName(m.FullName)])
		}
		for _, agg := range f.Aggregates {
			a := b.byName[protoreflect.FullName(agg.FullName)]
			declare(f.GoImportPath, aggregateIdents(agg), a)
			// The message descriptors live in the aggregate's file.
			var infos []string
			for _, m := range append(append([]*model.Message{}, agg.Events...), agg.Commands...) {
				infos = append(infos, m.Names.Info)
			}
			declare(f.GoImportPath, infos, a)
		}
		for _, p := range f.Projections {
			declare(f.GoImportPath, projectionIdents(p), b.byName[protoreflect.FullName(p.FullName)])
		}
		for _, s := range f.Sagas {
			declare(f.GoImportPath, sagaIdents(s), b.byName[protoreflect.FullName(s.FullName)])
		}
		for _, m := range f.Messages {
			if m.Standalone() {
				declare(f.GoImportPath, []string{m.Names.Info}, b.byName[protoreflect.FullName(m.FullName)])
			}
		}
	}
}
