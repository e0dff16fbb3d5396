package kubescale

import (
	"fmt"
	"strconv"
	"strings"
)

// sample is one line of Prometheus' text exposition format.
type sample struct {
	labels map[string]string
	value  float64
}

// metrics are the samples of one scrape, by metric name.
type metrics map[string][]sample

// parseMetrics reads Prometheus' text format: what a controller-runtime
// /metrics endpoint and kube-apiserver's /metrics serve. Comments are
// skipped; a line that cannot be read fails the whole scrape, so that a
// change of format shows up as an error rather than as zeros.
func parseMetrics(text string) (metrics, error) {
	out := metrics{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n+1, line, err)
		}
		out[name] = append(out[name], s)
	}
	return out, nil
}

// parseSample reads `name{label="value",...} value [timestamp]`.
func parseSample(line string) (string, sample, error) {
	s := sample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return "", s, fmt.Errorf("no metric name")
	}
	name, rest := line[:end], line[end:]
	if strings.HasPrefix(rest, "{") {
		var err error
		if rest, err = parseLabels(rest[1:], s.labels); err != nil {
			return "", s, err
		}
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", s, fmt.Errorf("want a value and an optional timestamp after the labels")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", s, err
	}
	s.value = v
	return name, s, nil
}

// parseLabels reads label pairs up to the closing brace into into, and
// returns what follows it.
func parseLabels(in string, into map[string]string) (string, error) {
	for {
		in = strings.TrimLeft(in, " ,")
		if strings.HasPrefix(in, "}") {
			return in[1:], nil
		}
		eq := strings.Index(in, "=\"")
		if eq <= 0 {
			return "", fmt.Errorf("label without a quoted value")
		}
		key := in[:eq]
		in = in[eq+2:]
		var val strings.Builder
		for {
			if in == "" {
				return "", fmt.Errorf("label %s: no closing quote", key)
			}
			c := in[0]
			in = in[1:]
			if c == '"' {
				break
			}
			if c == '\\' && in != "" {
				switch in[0] {
				case 'n':
					c = '\n'
				default:
					c = in[0]
				}
				in = in[1:]
			}
			val.WriteByte(c)
		}
		into[key] = val.String()
	}
}

// sum adds the values of a metric's samples whose labels match all of
// want (a nil want matches every sample).
func (m metrics) sum(name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range m[name] {
		if matches(s.labels, want) {
			total += s.value
		}
	}
	return total
}

// sumBy adds a metric's matching samples up by the value of one label.
func (m metrics) sumBy(name, label string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m[name] {
		if matches(s.labels, want) {
			out[s.labels[label]] += s.value
		}
	}
	return out
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}
