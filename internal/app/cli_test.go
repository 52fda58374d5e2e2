package app

import (
	"regexp"
	"testing"
)

// TestVersionString: the version main links in comes first; without one,
// the build info's stands in (a test binary has none: "(devel)").
func TestVersionString(t *testing.T) {
	for _, tc := range []struct{ linked, want string }{
		{"v1.2.3", `^shardtop v1\.2\.3 (\(\w+(-dirty)?\) )?go1\.\d+`},
		{"", `^shardtop \(devel\) (\(\w+(-dirty)?\) )?go1\.\d+`},
	} {
		if got := versionString(tc.linked); !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("versionString(%q) = %q, want it to match %s", tc.linked, got, tc.want)
		}
	}
}
