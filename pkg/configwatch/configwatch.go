// Package configwatch keeps the controller's configuration current: it watches
// the ConfigMap config-cicdstatemgr (config.yaml) and the Secret
// cicdstatemgr-secrets (secrets.yaml) and rebuilds the Redis store and the
// engine when they change, with no restart.
package configwatch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"knative.dev/pkg/configmap"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/config"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/engine"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/store"
)

// Names of the watched objects and their keys.
const (
	ConfigMapName = "config-cicdstatemgr"
	ConfigKey     = "config.yaml"
	SecretName    = "cicdstatemgr-secrets"
	SecretsKey    = "secrets.yaml"
)

// EngineFactory builds an engine over a store for a configuration.
type EngineFactory func(st *store.Store, cfg *config.Config) *engine.Engine

// Source is the current configuration and the engine built from it.
type Source struct {
	build EngineFactory
	// StoreOptions adjusts the store options derived from config.yaml (tests
	// and flags use it to override the address).
	StoreOptions func(*store.Options)

	mu            sync.RWMutex
	configText    []byte
	secretsText   []byte
	cfg           *config.Config
	eng           *engine.Engine
	st            *store.Store
	storeSettings store.Options
	err           error
}

// NewSource returns a Source with no configuration yet.
func NewSource(build EngineFactory) *Source {
	return &Source{build: build, err: errors.New("waiting for ConfigMap " + ConfigMapName)}
}

// Current implements reconciler.EngineSource.
func (s *Source) Current() (*engine.Engine, *config.Config, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.err != nil {
		return nil, nil, s.err
	}
	return s.eng, s.cfg, nil
}

// Store returns the current store (nil before a valid configuration).
func (s *Source) Store() *store.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

// Apply installs a new config.yaml / secrets.yaml pair. A configuration that
// does not parse leaves the source failing with a message saying why.
func (s *Source) Apply(configText, secretsText []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.configText, s.secretsText = configText, secretsText
	if configText == nil {
		s.err = fmt.Errorf("ConfigMap %s has no key %s", ConfigMapName, ConfigKey)
		return s.err
	}
	cfg, err := config.Parse(configText, secretsText)
	if err != nil {
		s.err = fmt.Errorf("invalid controller configuration: %w", err)
		return s.err
	}
	rc, err := cfg.Redis()
	if err != nil {
		s.err = fmt.Errorf("invalid controller configuration: %w", err)
		return s.err
	}
	opts := rc.StoreOptions()
	opts.MaxContextBytes = cfg.Budgets().ContextBytes
	if s.StoreOptions != nil {
		s.StoreOptions(&opts)
	}
	st := s.st
	if st == nil || !reflect.DeepEqual(opts, s.storeSettings) {
		st, err = store.New(opts)
		if err != nil {
			s.err = fmt.Errorf("invalid redis settings: %w", err)
			return s.err
		}
		if old := s.st; old != nil {
			// in-flight operations may still hold the old store
			time.AfterFunc(time.Minute, func() { old.Close() })
		}
		s.st, s.storeSettings = st, opts
	}
	s.cfg, s.eng, s.err = cfg, s.build(st, cfg), nil
	return nil
}

// Watch follows the ConfigMap through cmw, the ConfigMap watcher knative's
// sharedmain gives every controller (a missing ConfigMap is not fatal: the
// source reports it until it appears), and the Secret through an informer on
// that one Secret by name (a metadata.name field selector, so RBAC can limit
// the controller to that Secret with resourceNames). Every change is applied.
// It returns once the Secret informer has synced; cmw delivers the ConfigMap
// when sharedmain starts it.
func (s *Source) Watch(ctx context.Context, cmw configmap.Watcher, kube kubernetes.Interface, namespace string, onError func(error)) error {
	var mu sync.Mutex
	var cfgText, secText []byte
	reload := func() {
		if err := s.Apply(cfgText, secText); err != nil && onError != nil {
			onError(err)
		}
	}
	onConfigMap := func(cm *corev1.ConfigMap) {
		mu.Lock()
		defer mu.Unlock()
		cfgText = nil
		if v, has := cm.Data[ConfigKey]; has {
			cfgText = []byte(v)
		}
		reload()
	}
	if dw, ok := cmw.(configmap.DefaultingWatcher); ok {
		dw.WatchWithDefault(corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: namespace}}, onConfigMap)
	} else {
		cmw.Watch(ConfigMapName, onConfigMap)
	}

	onSecret := func(obj any) {
		mu.Lock()
		defer mu.Unlock()
		secText = nil
		if sec, ok := obj.(*corev1.Secret); ok {
			secText = sec.Data[SecretsKey]
		}
		reload()
	}
	byName := fields.OneTermEqualSelector("metadata.name", SecretName).String()
	secrets := kube.CoreV1().Secrets(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return secrets.Watch(ctx, o)
		},
	}
	// The wrapper tells the reflector whether the client can stream lists
	// (the fake clientset of tests cannot).
	informer := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, kube), &corev1.Secret{}, 10*time.Minute, cache.Indexers{})
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onSecret,
		UpdateFunc: func(_, obj any) { onSecret(obj) },
		DeleteFunc: func(any) { onSecret(nil) },
	}); err != nil {
		return err
	}
	go informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return errors.New("timed out waiting for the Secret " + SecretName)
	}
	return nil
}
