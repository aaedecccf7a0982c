{{/*
Labels of every object: kustomize's (app.kubernetes.io/part-of) and Helm's own.
*/}}
{{- define "bf-jupyter.labels" -}}
app.kubernetes.io/part-of: bf-jupyter
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
An image reference behind imageRegistry: (list $ "name:tag").
*/}}
{{- define "bf-jupyter.registryImage" -}}
{{- $root := index . 0 -}}
{{- $ref := index . 1 -}}
{{- if $root.Values.imageRegistry -}}
{{- printf "%s/%s" (trimSuffix "/" $root.Values.imageRegistry) $ref -}}
{{- else -}}
{{- $ref -}}
{{- end -}}
{{- end }}

{{/*
The bf-jupyter image.
*/}}
{{- define "bf-jupyter.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- include "bf-jupyter.registryImage" (list . $ref) -}}
{{- end }}

{{/*
The client build of bitfusion.defaultClient (the device plugin runs it); fails naming the values.
*/}}
{{- define "bf-jupyter.defaultClient" -}}
{{- $want := .Values.bitfusion.defaultClient -}}
{{- $found := dict -}}
{{- range .Values.bitfusion.clients -}}
{{- if and (eq .os $want.os) (eq .version $want.version) -}}
{{- $found = . -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "bitfusion.defaultClient {os: %s, version: %s} is not in bitfusion.clients: add it there or name one of those" $want.os $want.version) -}}
{{- end -}}
{{- toYaml $found -}}
{{- end }}

{{/*
Whether the token service is deployed ("true" or "").
*/}}
{{- define "bf-jupyter.tokenService" -}}
{{- if eq .Values.bitfusion.tokenSource "service" }}true{{ end -}}
{{- end }}

{{/*
The webhook's configuration file (format: bf_jupyter/cluster/webhook/config.py).
*/}}
{{- define "bf-jupyter.webhookConfig" -}}
{{- $b := .Values.bitfusion -}}
{{- $_ := include "bf-jupyter.defaultClient" . -}}
{{- $clients := list -}}
{{- range $b.clients -}}
{{- $clients = append $clients (merge (dict "image" (include "bf-jupyter.registryImage" (list $ .image))) (omit . "image")) -}}
{{- end -}}
{{- $config := dict
  "defaultClient" $b.defaultClient
  "clients" $clients
  "tokenSource" $b.tokenSource
  "tokenService" (dict
    "url" (printf "https://bf-token-service.%s.svc" .Release.Namespace)
    "audience" $b.tokenServiceAudience
    "caFile" "/etc/bf-jupyter/token-service-ca/ca.crt")
  "tokenSecret" $b.tokenSecret
  "userConfigDir" $b.userConfigDir
  "fallbackLibraryPath" $b.fallbackLibraryPath
  "imagePullPolicy" .Values.image.pullPolicy
  "guardImage" (include "bf-jupyter.image" .)
  "initResources" $b.initResources -}}
{{- with $b.perGpuMemory }}{{ $_ := set $config "perGpuMemory" . }}{{ end -}}
{{- with $b.maxGpusPerServer }}{{ $_ := set $config "maxGpusPerServer" . }}{{ end -}}
{{- toYaml $config -}}
{{- end }}

{{/*
The ConfigMap's name carries a hash of its content, as kustomize's configMapGenerator does: a
change rolls the webhook and token-service Deployments, and pods that still run keep the old one.
*/}}
{{- define "bf-jupyter.webhookConfigName" -}}
bf-webhook-config-{{ include "bf-jupyter.webhookConfig" . | sha256sum | trunc 10 }}
{{- end }}

{{/*
The preferred spread of a Deployment's replicas over nodes: (list $ "bf-webhook").
*/}}
{{- define "bf-jupyter.spread" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: {{ index . 1 }}
{{- end }}

{{/*
The webhook's serving names in the release namespace: (list $ "bf-webhook").
*/}}
{{- define "bf-jupyter.serviceNames" -}}
{{- $ns := (index . 0).Release.Namespace -}}
{{- $name := index . 1 -}}
{{- toJson (list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns)) -}}
{{- end }}

{{/*
The namespaces never sent to the webhooks: webhook.excludedNamespaces and the release namespace.
*/}}
{{- define "bf-jupyter.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ append .Values.webhook.excludedNamespaces .Release.Namespace | uniq | toJson }}
{{- end }}
