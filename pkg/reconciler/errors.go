package reconciler

import apierrors "k8s.io/apimachinery/pkg/api/errors"

func isNotFoundOrForbidden(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err)
}
