package spec

import (
	"math"
	"reflect"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// want names what a value of type t looks like, for messages.
func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration such as 30s or 10m"
	case t == percentType:
		return "a number of percent such as 5 or 2.5"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	}
	return "a value"
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case tagStr:
			return "the string " + strconv.Quote(clip(n.Value))
		case tagInt, tagFloat:
			return "the number " + clip(n.Value)
		case tagBool:
			return n.Value
		case tagNull:
			return "an empty value"
		}
		return "the " + strings.TrimPrefix(n.ShortTag(), "!!") + " " + clip(n.Value)
	}
	return "an alias"
}

// clip shortens a value echoed in a message, so that a huge value does not
// make a huge message.
func clip(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// closest returns the known name closest to an unknown one, or "" when
// none is close enough to be a likely typo.
func closest(name string, known []string) string {
	if len(name) > 64 {
		return ""
	}
	best, bestDist := "", math.MaxInt
	for _, k := range known {
		dist := editDistance(strings.ToLower(name), strings.ToLower(k))
		if dist < bestDist || (dist == bestDist && k < best) {
			best, bestDist = k, dist
		}
	}
	if bestDist > max(2, len(name)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
