// Package generator turns annotated proto descriptors into the validated
// intermediate model (package model) that package templates renders.
//
// It reads the eda.v1 options in one file (options.go), decides every
// generated identifier once (names.go), checks everything and collects every
// error with its file:line:col before anything is rendered (build.go). Run is
// the one entry point shared by the protoc plugin, `eda generate` and the
// golden tests, so they produce byte-identical output.
package generator
