// Package filetest writes the files tests read: config files, token files,
// state files. It is test support: import it from _test.go files only.
package filetest

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes content to the file name in dir with exactly mode (the umask
// would narrow a plain os.WriteFile, and tests of permission warnings need
// the mode they ask for) and returns its path. It fails the test on error.
func Write(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
