// Package golden holds the generator's golden cases. Each folder below is one
// case: .proto inputs and, beside them, the committed output of protoc-gen-go
// and protoc-gen-eda, a Go package that compiles and has a behavioural test
// publishing and handling through the generated code. Folders under errors/
// hold invalid inputs and want.txt, the exact error the generator must
// report (and params.txt, when the case passes plugin parameters, and
// generate.txt, when only some of its files are generated).
//
// The test compiles each case in process, one request per directory as buf
// does, and compares. Rewrite the expected files with
//
//	go test ./golden -update
//
// and review the diff: a golden changes only on purpose.
package golden
