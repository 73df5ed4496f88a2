{{/* Names and labels. */}}
{{- define "grenswacht.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "grenswacht.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "grenswacht.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "grenswacht.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: grenswacht
{{- end -}}

{{- define "grenswacht.selectorLabels" -}}
app.kubernetes.io/name: {{ include "grenswacht.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: (dict "root" $ "component" "ingest") */}}
{{- define "grenswacht.componentLabels" -}}
{{ include "grenswacht.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "grenswacht.componentSelector" -}}
{{ include "grenswacht.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "grenswacht.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "grenswacht.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image: (dict "root" $ "scamper" false) */}}
{{- define "grenswacht.image" -}}
{{- $image := .root.Values.image -}}
{{- if $image.digest -}}
{{- if .scamper -}}
{{- fail "image.digest pins one image; the scamper probe needs its own image: set image.tag instead" -}}
{{- end -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- $tag := default .root.Chart.AppVersion $image.tag -}}
{{- if .scamper -}}{{- $tag = printf "%s%s" $tag $image.scamperTagSuffix -}}{{- end -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Checksum of the configuration, so pods restart when it changes. */}}
{{- define "grenswacht.configChecksum" -}}
{{- dict "config" .Values.config "inventory" .Values.inventory | toJson | sha256sum -}}
{{- end -}}

{{/*
Environment of every grenswacht container. Names follow grenswacht/settings.py: prefix
GRENSWACHT_, nested keys joined with "__". Secrets are referenced, never inlined.
*/}}
{{- define "grenswacht.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $isProbe := hasPrefix "probe" .component -}}
- name: GRENSWACHT_CONFIG
  value: /etc/grenswacht/grenswacht.toml
- name: GRENSWACHT_DATA_DIR
  value: /var/lib/grenswacht
- name: HOME
  value: /tmp
- name: GRENSWACHT_COMPONENT
  value: {{ .component }}
- name: GRENSWACHT_BUS
  value: {{ printf "kafka://%s" $v.kafka.bootstrapServers | quote }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.caSecret }}
- name: GRENSWACHT_KAFKA__SSL_CAFILE
  value: /etc/grenswacht/kafka-ca/ca.crt
{{- end }}
- name: GRENSWACHT_KAFKA__SECURITY_PROTOCOL
  value: {{ printf "%s%s" (ternary "SASL_" "" $v.kafka.sasl.enabled) (ternary "SSL" "PLAINTEXT" $v.kafka.tls.enabled) | quote }}
{{- if $v.kafka.sasl.enabled }}
- name: GRENSWACHT_KAFKA__SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: GRENSWACHT_KAFKA__SASL_PLAIN_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
- name: GRENSWACHT_KAFKA__SASL_PLAIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required when kafka.sasl.enabled" $v.kafka.sasl.existingSecret }}
      key: {{ $v.kafka.sasl.passwordKey }}
{{- end }}
{{- $topics := $v.kafka.topics }}
- name: GRENSWACHT_KAFKA__CREATE_TOPICS
  value: {{ (not $topics.create) | toString | quote }}
- name: GRENSWACHT_KAFKA__REPLICATION_FACTOR
  value: {{ $topics.replicas | quote }}
- name: GRENSWACHT_KAFKA__PARTITIONS
  value: {{ include "grenswacht.topicPartitions" $root | quote }}
{{- if not $isProbe }}
{{- include "grenswacht.storageEnv" $root }}
{{- if $v.inventory.content }}
- name: GRENSWACHT_ATLAS__INVENTORY
  value: /etc/grenswacht/inventory/{{ $v.inventory.fileName }}
{{- end }}
{{- end }}
{{- if and (eq .component "scheduler") $v.atlas.existingSecret }}
- name: GRENSWACHT_ATLAS__API_KEY_FILE
  value: /etc/grenswacht/atlas/api-key
{{- end }}
{{- if and $v.server.tokenSecret (not $isProbe) }}
- name: GRENSWACHT_SERVER__TOKEN_FILE
  value: /etc/grenswacht/server/token
{{- end }}
- name: GRENSWACHT_METRICS__HOST
  value: "0.0.0.0"
- name: GRENSWACHT_METRICS__PORT
  value: {{ $v.metrics.port | quote }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* GRENSWACHT_STORAGE: a DSN from a Secret, or the URL with credentials from a Secret. */}}
{{- define "grenswacht.storageEnv" -}}
{{- $ch := .Values.clickhouse -}}
{{- if $ch.dsnSecret.name }}
- name: GRENSWACHT_STORAGE
  valueFrom:
    secretKeyRef:
      name: {{ $ch.dsnSecret.name }}
      key: {{ $ch.dsnSecret.key }}
{{- else if $ch.auth.existingSecret }}
- name: GW_CLICKHOUSE_USER
  valueFrom:
    secretKeyRef:
      name: {{ $ch.auth.existingSecret }}
      key: {{ $ch.auth.usernameKey }}
- name: GW_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ch.auth.existingSecret }}
      key: {{ $ch.auth.passwordKey }}
{{- $parts := regexSplit "://" $ch.url 2 }}
- name: GRENSWACHT_STORAGE
  value: {{ printf "%s://$(GW_CLICKHOUSE_USER):$(GW_CLICKHOUSE_PASSWORD)@%s" (index $parts 0) (index $parts 1) | quote }}
{{- else }}
- name: GRENSWACHT_STORAGE
  value: {{ $ch.url | quote }}
{{- end }}
{{- end -}}

{{/* Volumes of a grenswacht pod (config, inventory, secrets, writable dirs): ctx as env. */}}
{{- define "grenswacht.volumes" -}}
{{- $component := .component -}}
{{- with .root -}}
- name: config
  configMap:
    name: {{ include "grenswacht.fullname" . }}-config
{{- if and (include "grenswacht.hasInventory" .) (not (hasPrefix "probe" $component)) }}
- name: inventory
  configMap:
    name: {{ include "grenswacht.fullname" . }}-config
    items:
      - key: {{ .Values.inventory.fileName }}
        path: {{ .Values.inventory.fileName }}
{{- end }}
- name: tmp
  emptyDir: {}
{{- if and .Values.atlas.existingSecret (eq $component "scheduler") }}
- name: atlas-key
  secret:
    secretName: {{ .Values.atlas.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.atlas.apiKeyKey }}
        path: api-key
{{- end }}
{{- if and .Values.server.tokenSecret (not (hasPrefix "probe" $component)) }}
- name: server-token
  secret:
    secretName: {{ .Values.server.tokenSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.server.tokenKey }}
        path: token
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end -}}
{{- end -}}

{{- define "grenswacht.volumeMounts" -}}
{{- $component := .component -}}
{{- with .root -}}
- name: config
  mountPath: /etc/grenswacht/grenswacht.toml
  subPath: grenswacht.toml
  readOnly: true
{{- if and (include "grenswacht.hasInventory" .) (not (hasPrefix "probe" $component)) }}
- name: inventory
  mountPath: /etc/grenswacht/inventory
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/grenswacht
{{- if and .Values.atlas.existingSecret (eq $component "scheduler") }}
- name: atlas-key
  mountPath: /etc/grenswacht/atlas
  readOnly: true
{{- end }}
{{- if and .Values.server.tokenSecret (not (hasPrefix "probe" $component)) }}
- name: server-token
  mountPath: /etc/grenswacht/server
  readOnly: true
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/grenswacht/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}
{{- end -}}

{{/* Probes on the metrics/health port. */}}
{{- define "grenswacht.healthProbes" -}}
livenessProbe:
  httpGet:
    path: {{ .Values.metrics.livenessPath }}
    port: metrics
  initialDelaySeconds: 10
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: {{ .Values.metrics.readinessPath }}
    port: metrics
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
startupProbe:
  httpGet:
    path: {{ .Values.metrics.livenessPath }}
    port: metrics
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

{{/* Pod-level settings shared by every workload. */}}
{{- define "grenswacht.podCommon" -}}
serviceAccountName: {{ include "grenswacht.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
{{ toYaml . }}
{{- end }}
{{- with .Values.affinity }}
affinity:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* "true" when any inventory file has content. */}}
{{- define "grenswacht.hasInventory" -}}
{{- if .Values.inventory.content }}true{{ end -}}
{{- end -}}

{{/* Topic names (schemas/topics.py) by values key. */}}
{{- define "grenswacht.topicNames" -}}
{{- dict "results" "grenswacht.results.v1" "probeTasks" "grenswacht.probe-tasks.v1" "findings" "grenswacht.findings.v1" "verdicts" "grenswacht.verdicts.v1" "alerts" "grenswacht.alerts.v1" "deadLetters" "grenswacht.dead-letters.v1" "vantagePoints" "grenswacht.vantage-points.v1" "confirmRequests" "grenswacht.confirm-requests.v1" | toJson -}}
{{- end -}}

{{/* {"topic name": partitions} as JSON, for GRENSWACHT_KAFKA__PARTITIONS. */}}
{{- define "grenswacht.topicPartitions" -}}
{{- $out := dict -}}
{{- range $key, $name := include "grenswacht.topicNames" . | fromJson -}}
{{- $_ := set $out $name (index $.Values.kafka.topics $key).partitions -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}
