package comments_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/protoc-gen-eda/eda/golden/comments"
	"github.com/protoc-gen-eda/eda/internal/edatest"
	"github.com/protoc-gen-eda/eda/runtime"
)

// shipments handles the deprecated messages and leaves the others to the
// embedded Unimplemented handler.
type shipments struct {
	comments.UnimplementedShipmentEventHandler
	lost     chan edatest.Received[*comments.ShipmentLost]
	reroutes chan edatest.Received[*comments.RerouteShipment]
	legacy   chan edatest.Received[*comments.Legacy]
}

func (s *shipments) HandleShipmentLost(ctx context.Context, e *comments.ShipmentLost) error {
	return edatest.Record(ctx, s.lost, e)
}

func (s *shipments) HandleRerouteShipment(ctx context.Context, c *comments.RerouteShipment) error {
	return edatest.Record(ctx, s.reroutes, c)
}

func (s *shipments) HandleLegacy(ctx context.Context, e *comments.Legacy) error {
	return edatest.Record(ctx, s.legacy, e)
}

var (
	_ comments.ShipmentEventHandler   = (*shipments)(nil)
	_ comments.ShipmentCommandHandler = (*shipments)(nil)
	_ comments.LegacyHandler          = (*shipments)(nil)
)

func TestDeprecatedMessagesStillPublishAndHandle(t *testing.T) {
	s := &shipments{
		lost:     make(chan edatest.Received[*comments.ShipmentLost], 16),
		reroutes: make(chan edatest.Received[*comments.RerouteShipment], 16),
		legacy:   make(chan edatest.Received[*comments.Legacy], 16),
	}
	h := edatest.Start(t, func(r *runtime.Router) error {
		if err := comments.RegisterShipmentEventHandler(r, s); err != nil {
			return err
		}
		if err := comments.RegisterShipmentCommandHandler(r, s); err != nil {
			return err
		}
		return comments.RegisterLegacyHandler(r, s)
	})
	ctx := context.Background()

	if err := comments.NewShipmentEventPublisher(h.Publisher).PublishShipmentLost(ctx, &comments.ShipmentLost{ShipmentId: "sh-1"}); err != nil {
		t.Fatal(err)
	}
	lost := edatest.Receive(t, s.lost)
	if lost.Msg.GetShipmentId() != "sh-1" || lost.Env == nil ||
		lost.Env.Type != comments.ShipmentLostEventType || lost.Env.Subject != "sh-1" ||
		lost.Env.AggregateType != comments.ShipmentAggregateType {
		t.Errorf("ShipmentLost handled = %v, envelope %+v", lost.Msg, lost.Env)
	}

	if err := comments.NewShipmentCommandBus(h.Publisher).SendRerouteShipment(ctx, &comments.RerouteShipment{ShipmentId: "sh-2"}); err != nil {
		t.Fatal(err)
	}
	reroute := edatest.Receive(t, s.reroutes)
	if reroute.Msg.GetShipmentId() != "sh-2" || reroute.Env == nil ||
		reroute.Env.Type != comments.RerouteShipmentCommandType || reroute.Env.Subject != "sh-2" {
		t.Errorf("RerouteShipment handled = %v, envelope %+v", reroute.Msg, reroute.Env)
	}

	if err := comments.NewLegacyPublisher(h.Publisher).PublishLegacy(ctx, &comments.Legacy{Id: "l-1"}); err != nil {
		t.Fatal(err)
	}
	legacy := edatest.Receive(t, s.legacy)
	if legacy.Msg.GetId() != "l-1" || legacy.Env == nil || legacy.Env.Type != comments.LegacyEventType ||
		legacy.Env.Subject != "" {
		t.Errorf("Legacy handled = %v, envelope %+v", legacy.Msg, legacy.Env)
	}
}

// docs returns the doc comment text of every top-level declaration and
// method of the generated file, and of every interface method, keyed by
// name ("Recv.Method" for methods).
func docs(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "comments_eda.pb.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			name := d.Name.Name
			if d.Recv != nil {
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				name = typ.(*ast.Ident).Name + "." + name
			}
			out[name] = d.Doc.Text()
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.ValueSpec:
					doc := s.Doc
					if doc == nil && len(d.Specs) == 1 {
						doc = d.Doc
					}
					for _, n := range s.Names {
						out[n.Name] = doc.Text()
					}
				case *ast.TypeSpec:
					doc := s.Doc
					if doc == nil {
						doc = d.Doc
					}
					out[s.Name.Name] = doc.Text()
					if it, ok := s.Type.(*ast.InterfaceType); ok {
						for _, m := range it.Methods.List {
							for _, n := range m.Names {
								out[s.Name.Name+"."+n.Name] = m.Doc.Text()
							}
						}
					}
				}
			}
		}
	}
	return out
}

const deprecated = "\n\nDeprecated: do not use.\n"

func TestGeneratedDocsCarryProtoComments(t *testing.T) {
	d := docs(t)
	wantContains := map[string]string{
		// A two-line leading comment is kept line for line.
		"ShipmentEventPublisher.PublishShipmentDispatched": "\n\nShipmentDispatched records that the parcel left.\nThe comment spans two lines.\n",
		"ShipmentEventHandler.HandleShipmentDispatched":    "\n\nShipmentDispatched records that the parcel left.\nThe comment spans two lines.\n",
		"ShipmentEventPublisher.PublishShipmentLost":       "\n\nShipmentLost is no longer published; kept so old streams still decode.\n",
		"ShipmentCommandBus.SendRerouteShipment":           "\n\nRerouteShipment is deprecated in favour of a new flow.\n",
		"LegacyHandler.HandleLegacy":                       "\n\nLegacy is a deprecated standalone event.\n",
	}
	for name, want := range wantContains {
		if got, ok := d[name]; !ok {
			t.Errorf("%s not found in comments_eda.pb.go", name)
		} else if !strings.Contains(got, want) {
			t.Errorf("doc of %s = %q, want it to contain %q", name, got, want)
		}
	}

	// Deprecated messages get a Deprecated paragraph, last, on everything
	// named after them.
	for _, name := range []string{
		"ShipmentLostEventType",
		"RerouteShipmentCommandType",
		"LegacyEventType",
		"LegacyTopic",
		"LegacyPublisher.PublishLegacy",
		"LegacyHandler.HandleLegacy",
		"ShipmentEventPublisher.PublishShipmentLost",
		"ShipmentEventHandler.HandleShipmentLost",
		"ShipmentCommandBus.SendRerouteShipment",
		"ShipmentCommandHandler.HandleRerouteShipment",
	} {
		if got := d[name]; !strings.HasSuffix(got, deprecated) {
			t.Errorf("doc of %s = %q, want it to end with a Deprecated paragraph", name, got)
		}
	}
	// The others do not.
	for _, name := range []string{
		"ShipmentDispatchedEventType",
		"ShipmentDeliveredEventType",
		"ShipmentEventPublisher.PublishShipmentDispatched",
		"ShipmentEventPublisher.PublishShipmentDelivered",
		"ShipmentEventHandler.HandleShipmentDelivered",
	} {
		if got, ok := d[name]; !ok {
			t.Errorf("%s not found in comments_eda.pb.go", name)
		} else if strings.Contains(got, "Deprecated") {
			t.Errorf("doc of %s = %q, want no Deprecated paragraph", name, got)
		}
	}

	// ShipmentDelivered has no leading comment: its doc is only the
	// generated sentence, and the comment inside the message is not used.
	if got, want := d["ShipmentEventPublisher.PublishShipmentDelivered"], "PublishShipmentDelivered publishes one ShipmentDelivered event.\n"; got != want {
		t.Errorf("doc of PublishShipmentDelivered = %q, want %q", got, want)
	}
}

func TestAggregateDocCarriesProtoComment(t *testing.T) {
	src, err := os.ReadFile("comments_eda.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	want := "// Wire names of the Shipment aggregate, whose state is Shipment.\n//\n// Shipment is the state of a parcel on its way.\n//\n// Its comment has two paragraphs, and a code block:\n//\n//\tshipment.Dispatch()\n"
	if !strings.Contains(string(src), want) {
		t.Errorf("comments_eda.pb.go lacks the aggregate's doc:\n%s", want)
	}
}
