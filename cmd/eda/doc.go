// Command eda is the command-line tool of protoc-gen-eda. It generates the Go
// code of .proto files annotated with eda.v1 options with nothing but Go
// installed: no protoc, no buf and no plugin binaries.
//
// In a module that requires github.com/protoc-gen-eda/eda, as any module
// using its runtime does, run it at the version go.mod pins:
//
//	go run github.com/protoc-gen-eda/eda/cmd/eda generate
//
// or record it as a tool (go get -tool github.com/protoc-gen-eda/eda/cmd/eda)
// and run go tool eda generate. Anywhere else:
//
//	go run github.com/protoc-gen-eda/eda/cmd/eda@latest generate
//
// Usage:
//
//	eda <command> [arguments]
//
// The commands are:
//
//	generate   generate .pb.go and _eda.pb.go files, as buf generate would
//	breaking   report schema changes that break the reading of stored events
//	lock       record the current schema as a release in eda.lock
//	dlq        requeue messages from a dead-letter topic
//	lint       check the conventions of eda annotations: event names, owners, type names
//	version    print eda's version (also: eda --version)
//	help       print the usage of eda or of a command (also: eda <command> --help)
//
// # Exit status
//
// 0 on success; 1 when the input is wrong (a .proto file does not compile,
// an annotation is invalid) or a file cannot be written; 2 on bad usage (an
// unknown command or flag, a missing or unsupported buf.yaml or
// buf.gen.yaml, no files to compile). eda breaking differs: see below.
//
// # eda generate
//
//	eda generate [flags] [files...]
//
// Generate compiles .proto files in process and runs protoc-gen-go, which
// writes x.pb.go (the message types), and protoc-gen-eda, which writes
// x_eda.pb.go (publishers, handlers, command buses) for every x.proto with
// events or commands. Both run as the libraries eda is built with: the
// protoc-gen-go version is that of google.golang.org/protobuf in the build,
// which is your go.mod's when you run eda from your module.
//
// Generation happens in memory first: if any file has an error, eda prints
// every error, one per line as file:line:col: message (the file named
// relative to the working directory), exits with status 1, and writes
// nothing. On success it prints nothing, unless -v lists the files written.
//
// Flags:
//
//	    --config dir         buf mode: the dir of buf.yaml and buf.gen.yaml (default ".")
//	-I, --proto_path dir     import dir, repeatable; selects flag mode
//	    --out dir            flag mode: output dir (default ".")
//	    --opt parameter      flag mode: protoc-gen-eda parameter, repeatable
//	    --go                 flag mode: also run protoc-gen-go (default true)
//	    --go_opt parameter   flag mode: protoc-gen-go parameter, repeatable
//	-v, --verbose            list the files written
//	-h, --help               print this help
//
// # eda breaking
//
//	eda breaking [--against <dir | git ref | lock file>] [--samples dir] [--config dir] [--format text|json] [files...]
//
// Breaking compiles the workspace's .proto files (the modules of buf.yaml,
// read as eda generate reads them) and a previous version of them, and
// reports every change that would stop stored events from being read back,
// by the rules of package github.com/protoc-gen-eda/eda/evolution, named as
// buf breaking names them:
//
//	proto/shop/v1/orders.proto:8:1: FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: Previously present field "2" ...
//
// --against is the previous version: a directory holding a checkout of it,
// with its own buf.yaml, or else a git commit, branch or tag of the repository
// holding the workspace, whose tree eda extracts (git archive) to a temporary
// directory; findings in a file that is gone name it as ref:path. Files given
// as arguments restrict the check to them, as for eda generate; a file that
// only the previous version has can be named too. --against may also name a
// lock file written by eda lock: the workspace is then checked against every
// release in it, transitively where the compatibility mode says so, and each
// finding ends with the release it was found against. Without --against,
// the workspace's eda.lock is used.
//
// Each message is checked in its compatibility mode: events
// BACKWARD_TRANSITIVE, commands FULL, aggregate state, projections and sagas
// NONE, value types as the annotated messages using them, unless a message
// or its file sets compatibility. --samples decodes the recorded payloads
// under a folder (see package evolution/samples) and reports SAMPLE_*
// findings.
//
// --format json prints a JSON array of objects with the keys file, line,
// column, rule, category (WIRE, WIRE_JSON, FILE, EVENT or SAMPLE) and
// message; an empty array when nothing breaks. In text, nothing is printed
// then.
//
// The exit status is 0 when nothing breaks, 1 when something does, and 2
// when the check could not be made: bad usage, a missing buf.yaml, a git ref
// that does not exist, a corrupt lock file, or a version (current or
// previous) that does not compile, whose errors are printed as
// file:line:col: message.
//
// # eda lock
//
//	eda lock --release <name> [--config dir] [--lock file] [--force] [files...]
//
// Lock appends the workspace's schema (or the files given) to the lock file,
// eda.lock beside buf.yaml, as the release called name, after checking it
// against the releases already there as eda breaking does: a release that
// breaks an earlier one is not recorded (exit status 1) unless --force. A
// schema unchanged since the last release is not recorded again. Commit the
// lock file with the schemas.
//
// # eda dlq
//
//	eda dlq requeue --broker <url> [--topic t] [--group g] [--type T]... [--handler H]... [--max n] [--idle d]
//
// Requeue moves messages from a dead-letter topic (default eda.dead_letter)
// back to the topics they were dead-lettered from, keeping their ids,
// dropping their dead-letter metadata and counting the requeue in
// eda_requeued metadata. Each is acknowledged on the dead-letter topic only
// once its copy is published. --type and --handler select messages; the
// others go back to the end of the dead-letter topic. It reads in its own
// consumer group (--group, default eda-dlq) until the topic is read through
// or idle for --idle, or --max messages are requeued, and prints the count
// per topic.
//
// # eda lint
//
//	eda lint [--config dir] [--format text|json] [--disable RULE]... [files...]
//
// Lint compiles the workspace's .proto files, as eda breaking does, and
// checks the conventions of their eda annotations by the lint rules of
// package github.com/protoc-gen-eda/eda/evolution (LintRules): events named
// in the past tense, commands in the imperative, an owner for every event,
// explicit type names without a package version. docs/lint.md documents each
// rule, why it matters and how to fix a finding.
//
// A rule is switched off by --disable (repeatable, or comma-separated), by
// buf.yaml's lint.except, for some files by lint.ignore_only, and for one
// message by a leading comment // eda:lint:ignore RULE_ID (or buf's
// buf:lint:ignore); lint.disallow_comment_ignores turns the comments off.
// Files under lint.ignore are skipped. A module's own lint section replaces
// the top-level one for its files, as in buf. Output and exit status are
// those of eda breaking, with category LINT in json.
//
// # Buf mode
//
// Without -I, eda generate reads buf.yaml and buf.gen.yaml from the current
// directory (or from --config dir) and writes what buf generate writes there,
// byte for byte, for the plugins it knows:
//
//	# buf.yaml
//	version: v2
//	modules:
//	  - path: proto
//	    excludes:
//	      - proto/internal/drafts
//
//	# buf.gen.yaml
//	version: v2
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: paths=source_relative
//	  - local: ["go", "run", "github.com/protoc-gen-eda/eda/cmd/protoc-gen-eda"]
//	    out: gen
//	    opt: [paths=source_relative]
//
// The inputs are the .proto files under every module path, minus the
// excludes (and, if a module lists includes, only those under them). Paths
// in buf.yaml are relative to its directory. Every module can import the
// files of every other, as in a buf workspace; google/protobuf/*.proto are
// built in.
//
// A plugin is run if its local names protoc-gen-go or protoc-gen-eda: the
// name itself, a path ending in /protoc-gen-go or /protoc-gen-eda, or a
// command whose last element is such a path or Go package path, like
// ["go", "run", "google.golang.org/protobuf/cmd/protoc-gen-go"] or
// ["go", "run", "./cmd/protoc-gen-eda"]. Other plugins (protoc-gen-go-grpc,
// remote plugins...) are skipped with a warning: run buf generate for them.
// A version pinned with go run pkg@version that differs from the one eda
// runs is reported with a warning.
//
// Each plugin's opt, a string or a list joined with commas, is its
// parameter; out is the directory it writes to, relative to buf.gen.yaml's
// directory. As with buf's default strategy: directory, each plugin runs
// once per directory of .proto files (relative to their module), on the
// files of that directory; strategy: all runs it once on every file.
//
// Files given as arguments restrict generation to them: .proto files or
// directories, relative to a module root (shop/v1/orders.proto) or to
// buf.yaml's directory (proto/shop/v1). Each plugin still runs once per
// directory, on the selected files of that directory.
//
// # clean
//
// buf generate deletes the out directories first when buf.gen.yaml sets
// clean: true, whatever they hold: with out: proto it deletes the sources.
// eda does the same only when it is safe, after generation succeeded and just
// before writing: it exits with status 2, deleting nothing, when an out
// directory is buf.gen.yaml's own directory (as buf does), lies outside it,
// holds a module, or holds any .proto file. It does not delete a directory
// that a skipped plugin also writes to (a warning says so), since it would
// not write that plugin's files back.
//
// # Flag mode
//
// With -I (protoc's --proto_path), eda generate compiles the files given,
// named relative to an -I directory or as paths to files under one, in one
// request, and writes the output of protoc-gen-eda (parameter: the --opt
// values joined with commas) and, unless --go=false, of protoc-gen-go
// (parameter: the --go_opt values) under --out:
//
//	eda generate -I proto -I ../eda/schemas --out gen \
//	  --opt paths=source_relative --go_opt paths=source_relative \
//	  shop/v1/orders.proto
//
// It is the equivalent of
//
//	protoc -I proto -I ../eda/schemas --go_out=gen --go_opt=paths=source_relative \
//	  --eda_out=gen --eda_opt=paths=source_relative shop/v1/orders.proto
//
// # Differences from buf generate
//
// Only protoc-gen-go and protoc-gen-eda run. eda does not download buf.yaml
// deps: imported files must be in a module of the workspace (a module may be
// a directory holding a copy of eda/v1/options.proto, for instance). It
// rejects, with status 2, what it cannot reproduce: buf.yaml or buf.gen.yaml
// other than version v2, managed mode, inputs, include_imports, include_wkt,
// types, exclude_types and zip or jar outputs. A file excluded from a module
// can still be imported, where buf would report it missing. clean is
// restricted as described above.
package main
