package runtime

import (
	"slices"
	"testing"
)

func TestFairShare(t *testing.T) {
	tests := []struct {
		members []string
		parts   int
		want    []int // share of each member, in order
	}{
		{[]string{"a"}, 4, []int{4}},
		{[]string{"a", "b"}, 4, []int{2, 2}},
		{[]string{"a", "b", "c"}, 4, []int{2, 1, 1}},
		{[]string{"a", "b", "c"}, 1, []int{1, 0, 0}},
		{[]string{"a", "b", "c", "d", "e"}, 3, []int{1, 1, 1, 0, 0}},
	}
	for _, tc := range tests {
		var got []int
		total := 0
		for _, m := range tc.members {
			share := fairShare(tc.members, m, tc.parts)
			got = append(got, share)
			total += share
		}
		if !slices.Equal(got, tc.want) || total != tc.parts {
			t.Errorf("fairShare of %d partitions among %v = %v, want %v (adding up to %d)", tc.parts, tc.members, got, tc.want, tc.parts)
		}
	}
	// An instance the store did not list counts as one more member, last.
	if got := fairShare([]string{"a"}, "z", 4); got != 2 {
		t.Errorf("fairShare of an unlisted owner = %d, want 2", got)
	}
}

func TestChoosePartitions(t *testing.T) {
	tests := []struct {
		name   string
		parts  int
		target int
		leases map[int]string
		want   []int
	}{
		{"all free", 4, 2, nil, []int{0, 1}},
		{"keeps its own first", 4, 2, map[int]string{3: "me", 0: "x"}, []int{1, 3}},
		{"releases above its share, the highest", 4, 1, map[int]string{1: "me", 2: "me"}, []int{1}},
		{"never takes another's", 4, 4, map[int]string{0: "x", 2: "y"}, []int{1, 3}},
		{"ignores partitions past the count", 2, 2, map[int]string{5: "me"}, []int{0, 1}},
		{"nothing", 4, 0, map[int]string{1: "me"}, []int{}},
	}
	for _, tc := range tests {
		if got := choosePartitions("me", tc.parts, tc.target, tc.leases); !slices.Equal(got, tc.want) {
			t.Errorf("%s: choosePartitions = %v, want %v", tc.name, got, tc.want)
		}
	}
}
