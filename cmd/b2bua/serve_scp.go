package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// readSCPToken is the bearer token for an http(s) SCP: the first line of
// file (--scp-token-file), else env (B2BUA_SCP_TOKEN), else "" (none).
// Giving both is refused rather than one silently winning. Errors name the
// file, never the token.
func readSCPToken(file, env string) (string, error) {
	env = strings.TrimSpace(env)
	if file == "" {
		return env, nil
	}
	if env != "" {
		return "", errors.New("--scp-token-file: B2BUA_SCP_TOKEN is set as well: give the SCP token one way")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--scp-token-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if t := strings.TrimSpace(line); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("--scp-token-file: %s is empty", file)
}
