package generator

import "google.golang.org/protobuf/types/descriptorpb"

// The editions the generator reads; the same range as protoc-gen-go of the
// protobuf module it is built with.
const (
	minimumEdition = descriptorpb.Edition_EDITION_PROTO2
	maximumEdition = descriptorpb.Edition_EDITION_2023
)
