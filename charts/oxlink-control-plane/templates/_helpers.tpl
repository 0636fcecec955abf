{{- /*
Shared pieces of the controllers' objects. Every template of this chart sticks to the small
subset of Go templates and Sprig functions that `oxlink install` renders too.
*/ -}}

{{- /* The pod-template pieces common to the three controllers; takes the root context. */ -}}
{{- define "oxlink.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.controllerUID }}
  runAsGroup: {{ .Values.controllerGID }}
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /* A controller container's image, security context and health probes. */ -}}
{{- define "oxlink.container" -}}
image: {{ .Values.controllerImage }}:{{ .Values.controllerImageVersion }}
imagePullPolicy: {{ .Values.imagePullPolicy }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop:
    - ALL
livenessProbe:
  httpGet:
    path: /live
    port: admin-http
  initialDelaySeconds: 10
readinessProbe:
  httpGet:
    path: /ready
    port: admin-http
  failureThreshold: 7
{{- end }}

{{- /* Anti-affinity of one component's replicas; takes the component name. */ -}}
{{- define "oxlink.antiAffinity" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
  - labelSelector:
      matchExpressions:
      - key: linkerd.io/control-plane-component
        operator: In
        values:
        - {{ . }}
    topologyKey: kubernetes.io/hostname
  preferredDuringSchedulingIgnoredDuringExecution:
  - weight: 100
    podAffinityTerm:
      labelSelector:
        matchExpressions:
        - key: linkerd.io/control-plane-component
          operator: In
          values:
          - {{ . }}
      topologyKey: topology.kubernetes.io/zone
{{- end }}

{{- /* The admission webhooks' namespace selector (facts: skip opted-out and system namespaces). */ -}}
{{- define "oxlink.webhookNamespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - key: config.linkerd.io/admission-webhooks
    operator: NotIn
    values:
    - disabled
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
    - kube-system
    - cert-manager
{{- end }}

{{- /* The peers that are meshed pods of this control plane, in any namespace; takes the root
context. */ -}}
{{- define "oxlink.meshedPods" -}}
- namespaceSelector: {}
  podSelector:
    matchLabels:
      linkerd.io/control-plane-ns: {{ .Release.Namespace }}
{{- end }}
