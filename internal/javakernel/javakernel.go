// Package javakernel is the code interpreter's Java kernel: its source
// (JShell behind JJava's Jupyter kernel base), the pinned Maven Central
// jars it runs on, and how to stage and compile it into a tree.
package javakernel

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Source is the kernel's Java source (one class, no package).
//
//go:embed AirlockJavaKernel.java
var Source string

// SourceHash is a short hash of Source, for cache keys.
func SourceHash() string {
	sum := sha256.Sum256([]byte(Source))
	return hex.EncodeToString(sum[:4])
}

// MainClass is the kernel's entry point.
const MainClass = "AirlockJavaKernel"

// Dir is where the kernel lives in a template's rootfs.
const Dir = "/opt/airlock/java"

// DefaultRepository is Maven Central; AIRLOCK_MAVEN_URL overrides it (a
// mirror that serves the same paths).
const DefaultRepository = "https://repo1.maven.org/maven2"

// ErrChecksum reports a downloaded jar whose SHA-256 is not the pinned one.
var ErrChecksum = errors.New("javakernel: checksum mismatch")

// Jar is one pinned Maven artifact.
type Jar struct {
	Group, Artifact, Version string
	SHA256                   string
}

// File is the jar's file name.
func (j Jar) File() string { return j.Artifact + "-" + j.Version + ".jar" }

// Path is the jar's path in a Maven repository.
func (j Jar) Path() string {
	return path.Join(strings.ReplaceAll(j.Group, ".", "/"), j.Artifact, j.Version, j.File())
}

// Jars are JJava's kernel base and its runtime dependencies, as its POM
// names them; slf4j-nop silences the logging facade.
var Jars = []Jar{
	{"org.dflib.jjava", "jjava-jupyter", "1.0-a6", "9d158a68166abd4ea7bcd7d4b7c404c51fc8f3d013ba1c085997f454e4f64080"},
	{"com.google.code.gson", "gson", "2.11.0", "57928d6e5a6edeb2abd3770a8f95ba44dce45f3b23b7a9dc2b309c581552a78b"},
	{"org.zeromq", "jeromq", "0.6.0", "4784ff6d6e91b8eecd917b73d07b161c19a808ef870a5bdb760515bb67e208d3"},
	{"eu.neilalexander", "jnacl", "1.0.0", "4accc9d2a56a6dd5198ec5e1c5c05a091da563bccd346fd6578edc083152beaa"},
	{"org.slf4j", "slf4j-api", "2.0.17", "7b751d952061954d5abfed7181c1f645d336091b679891591d63329c622eb832"},
	{"org.slf4j", "slf4j-nop", "2.0.17", "3716f83649ec66161a2edefd4f49df34d1dd1c51cdcf941996c6987260f0a829"},
}

// Repository is the Maven repository to fetch from.
func Repository() string {
	if u := os.Getenv("AIRLOCK_MAVEN_URL"); u != "" {
		return u
	}
	return DefaultRepository
}

// Fetch makes sure every pinned jar is in cacheDir with its pinned hash,
// downloading the missing ones from repo, and returns their paths.
func Fetch(ctx context.Context, cacheDir, repo string) ([]string, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("javakernel: %w", err)
	}
	paths := make([]string, 0, len(Jars))
	for _, j := range Jars {
		p := filepath.Join(cacheDir, j.File())
		if sum, err := fileSHA256(p); err != nil || sum != j.SHA256 {
			if err := download(ctx, repo+"/"+j.Path(), p, j.SHA256); err != nil {
				return nil, err
			}
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// maxJar bounds a download: the largest pinned jar is under 1 MiB.
const maxJar = 16 << 20

func download(ctx context.Context, url, dst, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("javakernel: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("javakernel: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("javakernel: fetch %s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".jar-*")
	if err != nil {
		return fmt.Errorf("javakernel: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, maxJar+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("javakernel: fetch %s: %w", url, err)
	}
	if n > maxJar {
		return fmt.Errorf("javakernel: fetch %s: larger than %d bytes", url, maxJar)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s is %s, pinned %s", ErrChecksum, url, got, want)
	}
	return os.Rename(tmp.Name(), dst)
}

// Stage writes the source and copies the jars into dir (lib/ and src/),
// ready for Compile. dir is a path on this machine, e.g. a rootfs + Dir.
func Stage(dir string, jars []string) error {
	for _, sub := range []string{"lib", "src", "classes"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("javakernel: %w", err)
		}
	}
	for _, j := range jars {
		data, err := os.ReadFile(j)
		if err != nil {
			return fmt.Errorf("javakernel: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lib", filepath.Base(j)), data, 0o644); err != nil {
			return fmt.Errorf("javakernel: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "src", MainClass+".java"), []byte(Source), 0o644); err != nil {
		return fmt.Errorf("javakernel: %w", err)
	}
	return nil
}

// CompileArgs is the javac command line that compiles a staged kernel in
// dir (as seen by the javac that runs it).
func CompileArgs(dir string) []string {
	return []string{"javac", "-encoding", "UTF-8", "-nowarn", "-cp", dir + "/lib/*", "-d", dir + "/classes", dir + "/src/" + MainClass + ".java"}
}

// Argv is the kernel's command line for a kernel compiled in dir;
// "{connection_file}" is the Jupyter connection file. The JVM flags trade
// peak speed for start time (cells are small), and open java.util so the
// kernel can change its own environment for per-run env vars.
func Argv(dir string) []string {
	return []string{
		"java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-Djava.awt.headless=true",
		"--add-opens=java.base/java.util=ALL-UNNAMED",
		"-cp", dir + "/classes:" + dir + "/lib/*", MainClass, "{connection_file}",
	}
}
