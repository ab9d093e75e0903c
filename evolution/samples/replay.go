package samples

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/protoc-gen-eda/eda/runtime"
)

// Replay reads every sample under dir, of every version, as the runtime
// reads a stored event: it becomes a runtime.EventRecord of the sample's
// type name, version and content type, goes through upcasters (nil for
// none), and is then decoded into the current version of the event or
// command that has the resulting type name or alias among files, the
// service's proto files (for generated code, the File_* variables of its
// .pb.go files). Decoding is strict: a binary payload must leave no unknown
// fields and a protojson one must name only known fields and enum values,
// since either means replay loses or refuses what was stored. The generated
// Go type is used when its package is linked in, else a dynamic message.
//
// It returns every problem, joined, each starting with the sample's path:
// a sample that does not decode, a type name no event or command has, and
// an older version with no upcaster path to the current one. Call it from a
// test of the service, with the upcasters the service registers:
//
//	func TestSamples(t *testing.T) {
//		if err := samples.Replay(ctx, "samples", upcasters(), ordersv1.File_shop_orders_v1_orders_proto); err != nil {
//			t.Fatal(err)
//		}
//	}
func Replay(ctx context.Context, dir string, upcasters *runtime.Upcasters, files ...protoreflect.FileDescriptor) error {
	if len(files) == 0 {
		return errors.New("samples.Replay: no proto files: pass the File_* descriptors of the service's generated .pb.go files")
	}
	all, err := list(dir)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return fmt.Errorf("samples.Replay: %s holds no samples: record some with samples.Write", dir)
	}
	byName := typeIndex(files)
	var errs []error
	for _, s := range all {
		if err := replay(ctx, s, upcasters, byName); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// replay reads one sample; see Replay.
func replay(ctx context.Context, s sample, upcasters *runtime.Upcasters, byName map[string]*typeInfo) error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("samples.Replay: %w", err)
	}
	rec := &runtime.EventRecord{Type: s.typeName, SchemaVersion: s.version, ContentType: s.contentType, Data: data}
	if upcasters != nil {
		if err := upcasters.Upcast(ctx, rec); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
	}
	from := fmt.Sprintf("%s version %d", s.typeName, s.version)
	if rec.Type != s.typeName || rec.SchemaVersion != s.version {
		from += fmt.Sprintf(", upcast to %s version %d,", rec.Type, rec.SchemaVersion)
	}
	t := byName[rec.Type]
	switch {
	case t == nil:
		return fmt.Errorf("%s: %s has no event or command of that type name or alias in the files given: restore it, list it in the aliases of its successor, or register an upcaster that maps it to a current type",
			s.path, from)
	case rec.SchemaVersion < t.version:
		return fmt.Errorf("%s: %s has no upcaster path to version %d of %s: register an upcaster for %s version %d",
			s.path, from, t.version, t.subject(), rec.Type, rec.SchemaVersion)
	case rec.SchemaVersion > t.version:
		return fmt.Errorf("%s: %s is above version %d of %s, the current one", s.path, from, t.version, t.subject())
	}
	m := dynamicpb.NewMessage(t.msg).ProtoReflect()
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(t.msg.FullName()); err == nil {
		m = mt.New()
	}
	if p := decode(m, rec.ContentType, rec.Data, protoregistry.GlobalTypes); p != nil {
		at := s.path
		if rec.ContentType == runtime.ContentTypeJSON {
			// A position points into the upcast payload, which is the
			// sample itself when no upcaster ran.
			at = fmt.Sprintf("%s:%d:%d", s.path, p.line, p.col)
		}
		return fmt.Errorf("%s: %s %s", at, from, p.msg)
	}
	return nil
}
