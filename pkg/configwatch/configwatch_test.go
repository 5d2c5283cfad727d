package configwatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakekube "k8s.io/client-go/kubernetes/fake"
	"knative.dev/pkg/configmap/informer"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

func newTestSource() (*Source, *int) {
	builds := 0
	return NewSource(func(st *store.Store, _ *config.Config) *engine.Engine {
		builds++
		return &engine.Engine{Store: st}
	}), &builds
}

func configText(port int, extra string) string {
	return fmt.Sprintf("cicdstatemgr:\n  datasources:\n    redis: {host: 127.0.0.1, port: %d}\n  dashboard: {url: %s}\n", port, extra)
}

func TestApply(t *testing.T) {
	src, _ := newTestSource()
	if _, _, err := src.Current(); err == nil || !strings.Contains(err.Error(), ConfigMapName) {
		t.Fatalf("before any config: %v", err)
	}
	if err := src.Apply([]byte(configText(6390, "a")), nil); err != nil {
		t.Fatal(err)
	}
	eng, cfg, err := src.Current()
	if err != nil || eng == nil || cfg.StringAt("dashboard.url") != "a" {
		t.Fatalf("current: %v %v", err, cfg)
	}
	first := src.Store()
	// same Redis settings: the store is kept
	if err := src.Apply([]byte(configText(6390, "b")), nil); err != nil {
		t.Fatal(err)
	}
	if src.Store() != first {
		t.Fatal("the store was rebuilt although the Redis settings did not change")
	}
	// new Redis settings: a new store
	if err := src.Apply([]byte(configText(6391, "b")), []byte("cicdstatemgr:\n  datasources:\n    redis: {password: s3cret}\n")); err != nil {
		t.Fatal(err)
	}
	if src.Store() == first || src.Store().Addr() != "127.0.0.1:6391" {
		t.Fatalf("store not rebuilt for new settings: %s", src.Store().Addr())
	}
	// a broken config is reported, with a message naming the problem
	err = src.Apply([]byte("cicdstatemgr: [oops"), nil)
	if _, _, cerr := src.Current(); err == nil || cerr == nil || !strings.Contains(cerr.Error(), "malformed YAML") {
		t.Fatalf("broken config: %v / %v", err, cerr)
	}
	if err := src.Apply([]byte("cicdstatemgr:\n  datasources:\n    yamlfile: {path: x, isPrimary: true}\n    redis: {}\n"), nil); err == nil || !strings.Contains(err.Error(), "only redis") {
		t.Fatalf("file primary: %v", err)
	}
}

func TestWatchReloadsWithoutRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := fakekube.NewSimpleClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: "ns"}, Data: map[string]string{ConfigKey: configText(6390, "first")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: SecretName, Namespace: "ns"}, Data: map[string][]byte{SecretsKey: []byte("cicdstatemgr:\n  slack: {token: t1}\n")}},
	)
	src, _ := newTestSource()
	cmw := informer.NewInformedWatcher(kube, "ns")
	if err := src.Watch(ctx, cmw, kube, "ns", nil); err != nil {
		t.Fatal(err)
	}
	if err := cmw.Start(ctx.Done()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, cfg, err := src.Current()
		return err == nil && cfg.StringAt("dashboard.url") == "first" && cfg.SecretStringAt("slack.token") == "t1"
	})
	cm, _ := kube.CoreV1().ConfigMaps("ns").Get(ctx, ConfigMapName, metav1.GetOptions{})
	cm.Data[ConfigKey] = configText(6390, "second")
	if _, err := kube.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, cfg, err := src.Current()
		return err == nil && cfg.StringAt("dashboard.url") == "second"
	})
	sec, _ := kube.CoreV1().Secrets("ns").Get(ctx, SecretName, metav1.GetOptions{})
	sec.Data[SecretsKey] = []byte("cicdstatemgr:\n  slack: {token: t2}\n")
	if _, err := kube.CoreV1().Secrets("ns").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, cfg, err := src.Current()
		return err == nil && cfg.SecretStringAt("slack.token") == "t2"
	})
	if err := kube.CoreV1().ConfigMaps("ns").Delete(ctx, ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, _, err := src.Current()
		return err != nil && strings.Contains(err.Error(), ConfigKey)
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchStartsWithoutConfigMap: a missing ConfigMap is reported by the
// source, not fatal to the watcher, and picked up when it is created.
func TestWatchStartsWithoutConfigMap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kube := fakekube.NewSimpleClientset()
	src, _ := newTestSource()
	cmw := informer.NewInformedWatcher(kube, "ns")
	if err := src.Watch(ctx, cmw, kube, "ns", nil); err != nil {
		t.Fatal(err)
	}
	if err := cmw.Start(ctx.Done()); err != nil {
		t.Fatalf("the watcher must start without the ConfigMap: %v", err)
	}
	if _, _, err := src.Current(); err == nil || !strings.Contains(err.Error(), ConfigKey) {
		t.Fatalf("without a ConfigMap the source must say what is missing: %v", err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: "ns"}, Data: map[string]string{ConfigKey: configText(6390, "late")}}
	if _, err := kube.CoreV1().ConfigMaps("ns").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, cfg, err := src.Current()
		return err == nil && cfg.StringAt("dashboard.url") == "late"
	})
}
