// Package settings keeps the controller's configuration current: it watches
// the ConfigMap config-cicdstatemgr (config.yaml) and the Secret
// cicdstatemgr-secrets (secrets.yaml) and rebuilds the Redis store and the
// engine when they change, with no restart.
package settings

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

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
	opts := store.Options{
		Addr: rc.Addr, DB: rc.DB, Username: rc.Username, Password: rc.Password, TLS: rc.TLS,
		TLSCAFile: rc.TLSCAFile, TLSInsecureSkipVerify: rc.TLSInsecureSkipVerify, TLSServerName: rc.TLSServerName,
		KeyPrefix: rc.KeyPrefix,
	}
	if s.StoreOptions != nil {
		s.StoreOptions(&opts)
	}
	st := s.st
	if st == nil || opts != s.storeSettings {
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

// Watch starts informers on the ConfigMap and Secret in namespace and
// applies every change. It returns once both have synced.
func (s *Source) Watch(ctx context.Context, kube kubernetes.Interface, namespace string, onError func(error)) error {
	cmFactory := informers.NewSharedInformerFactoryWithOptions(kube, 10*time.Minute, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		}))
	secFactory := informers.NewSharedInformerFactoryWithOptions(kube, 10*time.Minute, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", SecretName).String()
		}))
	cms := cmFactory.Core().V1().ConfigMaps()
	secs := secFactory.Core().V1().Secrets()
	var mu sync.Mutex
	var cfgText, secText []byte
	reload := func() {
		mu.Lock()
		defer mu.Unlock()
		if err := s.Apply(cfgText, secText); err != nil && onError != nil {
			onError(err)
		}
	}
	handler := func(update func(obj any)) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { update(obj); reload() },
			UpdateFunc: func(_, obj any) { update(obj); reload() },
			DeleteFunc: func(obj any) { update(nil); reload() },
		}
	}
	if _, err := cms.Informer().AddEventHandler(handler(func(obj any) {
		mu.Lock()
		defer mu.Unlock()
		cfgText = nil
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			if v, has := cm.Data[ConfigKey]; has {
				cfgText = []byte(v)
			}
		}
	})); err != nil {
		return err
	}
	if _, err := secs.Informer().AddEventHandler(handler(func(obj any) {
		mu.Lock()
		defer mu.Unlock()
		secText = nil
		if sec, ok := obj.(*corev1.Secret); ok {
			secText = sec.Data[SecretsKey]
		}
	})); err != nil {
		return err
	}
	cmFactory.Start(ctx.Done())
	secFactory.Start(ctx.Done())
	for _, synced := range []cache.InformerSynced{cms.Informer().HasSynced, secs.Informer().HasSynced} {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			return errors.New("timed out waiting for the configuration informers")
		}
	}
	return nil
}
