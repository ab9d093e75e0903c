package evolution

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// lintHeader starts every file of the lint tests, with the package in
// place of %s; the first declaration is on line 5.
const lintHeader = "syntax = \"proto3\";\npackage %s;\nimport \"eda/v1/options.proto\";\n\n"

// lintSchema compiles body, in package pkg, as the single file shop.proto.
func lintSchema(t *testing.T, pkg, body string) *Schema {
	t.Helper()
	dir := t.TempDir()
	src := strings.Replace(lintHeader, "%s", pkg, 1) + body
	if err := os.WriteFile(filepath.Join(dir, "shop.proto"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Compile(context.Background(), []string{dir}, []string{"shop.proto"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lintAggregate is an aggregate for events and commands to name, on lines
// 5 to 8.
const lintAggregate = `message Order {
  option (eda.v1.message).aggregate = {};
  string order_id = 1 [(eda.v1.field).aggregate_id = true];
}
`

// Messages starting on line 9, after lintAggregate.
func lintEvent(name, opts string) string {
	return "message " + name + " {\n  option (eda.v1.message).event = {" + opts + "};\n  string order_id = 1;\n}\n"
}

func lintCommand(name, opts string) string {
	return "message " + name + " {\n  option (eda.v1.message).command = {" + opts + "};\n  string order_id = 1;\n}\n"
}

func TestLint(t *testing.T) {
	tests := []struct {
		name string
		pkg  string // default shop
		body string
		cfg  LintConfig
		want []string
	}{
		{
			name: "clean",
			body: lintAggregate + lintEvent("OrderPlaced", `aggregate: "Order"`) + lintCommand("PlaceOrder", `aggregate: "Order"`),
		},
		{
			name: "event not in the past tense points at its name",
			body: lintAggregate + lintEvent("PlaceOrder", `aggregate: "Order"`),
			want: []string{`shop.proto:9:9: EVENT_NAME_PAST_TENSE: Event "shop.PlaceOrder" is not named in the past tense: its last word "Order" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`},
		},
		{
			name: "event with an Event suffix",
			body: lintAggregate + lintEvent("OrderPlacedEvent", `aggregate: "Order"`),
			want: []string{`shop.proto:9:9: EVENT_NAME_PAST_TENSE: Event "shop.OrderPlacedEvent" ends in "Event": the annotation already says it is an event; drop the suffix and name it after what happened, in the past tense (OrderPlaced).`},
		},
		{
			name: "command named as an event",
			body: lintAggregate + lintCommand("OrderPlaced", `aggregate: "Order"`),
			want: []string{`shop.proto:9:9: COMMAND_NAME_IMPERATIVE: Command "shop.OrderPlaced" reads as an event: it ends in the past form "Placed"; name the command after what it asks for, verb first (PlaceOrder), or annotate the message as an event.`},
		},
		{
			name: "command with a Command suffix",
			body: lintAggregate + lintCommand("PlaceOrderCommand", `aggregate: "Order"`),
			want: []string{`shop.proto:9:9: COMMAND_NAME_IMPERATIVE: Command "shop.PlaceOrderCommand" ends in "Command": the annotation already says it is a command, and the name is in every envelope; drop the suffix (PlaceOrder).`},
		},
		{
			name: "command starting with a past form",
			body: lintAggregate + lintCommand("CancelledOrderRefund", `aggregate: "Order"`),
			want: []string{`shop.proto:9:9: COMMAND_NAME_IMPERATIVE: Command "shop.CancelledOrderRefund" starts with "Cancelled", a past form: a command asks for something to happen; start its name with the verb in the imperative (PlaceOrder).`},
		},
		{
			name: "event without owner points at its option",
			body: lintEvent("OrderPlaced", ""),
			want: []string{`shop.proto:6:3: EVENT_HAS_OWNER: Event "shop.OrderPlaced" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`},
		},
		{
			name: "event with its own owner",
			body: lintEvent("OrderPlaced", `owner: "team-orders"`),
		},
		{
			name: "event owned by the file",
			body: "option (eda.v1.file).owner = \"team-orders\";\n" + lintEvent("OrderPlaced", ""),
		},
		{
			name: "a command needs no owner",
			body: lintCommand("PlaceOrder", ""),
		},
		{
			name: "event of a versioned package without a type",
			pkg:  "shop.orders.v1",
			body: lintAggregate + lintEvent("OrderPlaced", `aggregate: "Order"`),
			want: []string{`shop.proto:10:3: EVENT_TYPE_EXPLICIT: Event "shop.orders.v1.OrderPlaced" has no explicit type, so its type name is "shop.orders.v1.OrderPlaced", package version included: set a type without it, like {type: "shop.orders.OrderPlaced"}, before the first release.`},
		},
		{
			name: "event of a versioned package with a type",
			pkg:  "shop.orders.v1beta1",
			body: lintAggregate + lintEvent("OrderPlaced", `aggregate: "Order" type: "shop.OrderPlaced"`),
		},
		{
			name: "command of a versioned package needs no type",
			pkg:  "shop.orders.v1",
			body: lintAggregate + lintCommand("PlaceOrder", `aggregate: "Order"`),
		},
		{
			name: "event type naming a package version",
			body: lintAggregate + lintEvent("OrderPlaced", `aggregate: "Order" type: "shop.v2.OrderPlaced"`),
			want: []string{`shop.proto:10:3: EVENT_TYPE_UNVERSIONED: Event "shop.OrderPlaced" has type "shop.v2.OrderPlaced", which names package version "v2": the payload's version is the envelope's; drop "v2" from the type before the first release.`},
		},
		{
			name: "command type naming a package version, set as a field of the option",
			body: "message PlaceOrder {\n  option (eda.v1.message).command.type = \"shop/v1alpha/PlaceOrder\";\n}\n",
			want: []string{`shop.proto:6:3: EVENT_TYPE_UNVERSIONED: Command "shop.PlaceOrder" has type "shop/v1alpha/PlaceOrder", which names package version "v1alpha": the payload's version is the envelope's; drop "v1alpha" from the type before the first release.`},
		},
		{
			name: "a type segment that only starts like a version",
			body: lintAggregate + lintEvent("OrderPlaced", `aggregate: "Order" type: "shop.vouchers.v1x.OrderPlaced"`),
		},
		{
			name: "several findings on one message, in catalogue order",
			pkg:  "shop.v1",
			body: lintEvent("Order", ""),
			want: []string{
				`shop.proto:5:9: EVENT_NAME_PAST_TENSE: Event "shop.v1.Order" is not named in the past tense: its last word "Order" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`,
				`shop.proto:6:3: EVENT_HAS_OWNER: Event "shop.v1.Order" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`,
				`shop.proto:6:3: EVENT_TYPE_EXPLICIT: Event "shop.v1.Order" has no explicit type, so its type name is "shop.v1.Order", package version included: set a type without it, like {type: "shop.Order"}, before the first release.`,
			},
		},
		{
			name: "disabled rules",
			pkg:  "shop.v1",
			body: lintEvent("Order", ""),
			cfg:  LintConfig{Disable: []string{EventHasOwner, EventTypeExplicit, "NOT_A_RULE"}},
			want: []string{`shop.proto:5:9: EVENT_NAME_PAST_TENSE: Event "shop.v1.Order" is not named in the past tense: its last word "Order" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`},
		},
		{
			name: "ignore comments on the message: eda's, buf's, with a reason",
			pkg:  "shop.v1",
			body: "// Order is a bad name.\n//\n// eda:lint:ignore EVENT_NAME_PAST_TENSE, EVENT_HAS_OWNER: kept for history\n// buf:lint:ignore EVENT_TYPE_EXPLICIT\n" + lintEvent("Order", ""),
		},
		{
			name: "an ignore comment on the option",
			body: "message Order {\n  // eda:lint:ignore EVENT_HAS_OWNER\n  option (eda.v1.message).event = {};\n}\n",
			want: []string{`shop.proto:5:9: EVENT_NAME_PAST_TENSE: Event "shop.Order" is not named in the past tense: its last word "Order" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`},
		},
		{
			name: "an ignore comment names other rules only",
			body: "// eda:lint:ignore EVENT_HAS_OWNER_X EVENT_TYPE_EXPLICIT\n// eda:lint:ignoreEVENT_HAS_OWNER\n// not eda:lint:ignore EVENT_HAS_OWNER\n" + lintEvent("OrderPlaced", ""),
			want: []string{`shop.proto:9:3: EVENT_HAS_OWNER: Event "shop.OrderPlaced" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`},
		},
		{
			name: "a reason before the ID does not ignore",
			body: "// eda:lint:ignore because EVENT_HAS_OWNER\n" + lintEvent("OrderPlaced", ""),
			want: []string{`shop.proto:7:3: EVENT_HAS_OWNER: Event "shop.OrderPlaced" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`},
		},
		{
			name: "comment ignores disallowed",
			body: "// eda:lint:ignore EVENT_HAS_OWNER\n" + lintEvent("OrderPlaced", ""),
			cfg:  LintConfig{DisallowCommentIgnores: true},
			want: []string{`shop.proto:7:3: EVENT_HAS_OWNER: Event "shop.OrderPlaced" has no owner: set its aggregate, its owner (option (eda.v1.message).event = {owner: "team-name"}) or the file's (option (eda.v1.file).owner = "team-name").`},
		},
		{
			name: "nested events and unannotated messages",
			body: "message Order {\n  message Placed {\n    option (eda.v1.message).event = {owner: \"o\"};\n  }\n  message Total {\n    option (eda.v1.message).event = {owner: \"o\"};\n  }\n  message Line {}\n}\n",
			want: []string{`shop.proto:9:11: EVENT_NAME_PAST_TENSE: Event "shop.Order.Total" is not named in the past tense: its last word "Total" is not a past form; name it after what happened (OrderPlaced, PaymentDeclined).`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := lintSchema(t, cmpOr(tt.pkg, "shop"), tt.body)
			got := Lint(s, tt.cfg)
			var lines []string
			for _, f := range got {
				lines = append(lines, f.String())
				if f.Element == nil || f.Element.ParentFile().Path() != f.File {
					t.Errorf("finding %s has element %v", f, f.Element)
				}
			}
			if !slices.Equal(lines, tt.want) {
				t.Errorf("Lint:\n got: %s\nwant: %s", strings.Join(lines, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestEventNames(t *testing.T) {
	pass := []string{
		"OrderPlaced", "PaymentDeclined", "ItemsShipped", "OrderCancelled", "OrderCanceled", "BookWritten",
		"TimeoutElapsed", "InvoiceSent", "RefundPaid", "HouseBuilt", "ProjectBegun", "StockHeld", "TicketSold",
		"ShipmentLost", "SensorRead", "PasswordReset", "InvoicePrepaid", "ChapterRewritten", "PaymentWithheld",
		"AccountOverdrawn", "TermsAgreed", "SeatUnavailable", "InvoiceOverdue", "UserSignedUp", "OrderTimedOut",
		"UserLoggedIn", "OrderPlacedV2", "OrderPlaced2", "HTTPRequestSent", "OrderIDSet", "VoteCast", "Placed",
		"order_placed",
	}
	fail := []string{
		"PlaceOrder", "Order", "OrderUpdate", "OrderPlacedEvent", "ShipmentSpeed", "PaymentSucceed", "MediaEmbed",
		"PaymentPresent", "DemandForecast", "TicketOutput", "PriceComet", "ItemsShippedNotification", "SignUp",
		"V2", "Bed",
	}
	for _, name := range pass {
		if msg := eventNameProblem(name); msg != "" {
			t.Errorf("event %s: %s", name, msg)
		}
	}
	for _, name := range fail {
		if eventNameProblem(name) == "" {
			t.Errorf("event %s passed, want a finding", name)
		}
	}
}

func TestCommandNames(t *testing.T) {
	pass := []string{
		"PlaceOrder", "CancelOrder", "ShipItems", "Deposit", "ReadMessages", "SetPrice", "ResetPassword",
		"PutItem", "FoundCompany", "MarkOrderShipped", "RetryFailed", "PurgeDeleted", "ApproveRequest",
		"SignUp", "CheckOut", "PlaceOrderV2", "SendEmail", "Command", "Embed", "FeedAnimals",
	}
	fail := []string{
		"OrderPlaced", "PaymentCaptured", "OrderPickedUp", "PlaceOrderCommand", "PlaceOrderCmd", "PlacedOrder",
		"PaidInvoiceRefund", "Shipped", "OrderPlacedCommandV2",
	}
	for _, name := range pass {
		if msg := commandNameProblem(name); msg != "" {
			t.Errorf("command %s: %s", name, msg)
		}
	}
	for _, name := range fail {
		if commandNameProblem(name) == "" {
			t.Errorf("command %s passed, want a finding", name)
		}
	}
}

func TestNameWords(t *testing.T) {
	tests := map[string][]string{
		"OrderPlaced":     {"Order", "Placed"},
		"HTTPRequestSent": {"HTTP", "Request", "Sent"},
		"OrderIDSet":      {"Order", "ID", "Set"},
		"OrderPlacedV2":   {"Order", "Placed"},
		"OrderPlaced2":    {"Order", "Placed"},
		"Order_placed":    {"Order", "placed"},
		"Order2FAEnabled": {"Order2", "FA", "Enabled"},
		"V2":              {"V"},
	}
	for name, want := range tests {
		if got := nameWords(name); !slices.Equal(got, want) {
			t.Errorf("nameWords(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestLintRulesCatalogue(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules {
		seen[r.ID] = true
	}
	for _, r := range LintRules {
		if seen[r.ID] {
			t.Errorf("lint rule %s listed twice or also a breaking rule", r.ID)
		}
		seen[r.ID] = true
		if r.Category != CategoryLint || !strings.Contains(r.Doc, "Fix:") {
			t.Errorf("lint rule %s: category %s, doc without a fix:\n%s", r.ID, r.Category, r.Doc)
		}
	}
	for _, id := range []string{EventNamePastTense, CommandNameImperative, EventHasOwner, EventTypeExplicit, EventTypeUnversioned} {
		if lintRuleIndex(id) < 0 {
			t.Errorf("rule %s is not in LintRules", id)
		}
	}
}
