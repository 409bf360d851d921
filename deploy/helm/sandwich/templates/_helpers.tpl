{{/* Names, labels and the one template every service's file includes (templates/<service>.yaml). */}}

{{- define "sandwich.dashed" -}}{{ . | replace "_" "-" }}{{- end -}}

{{/* The Kubernetes name of a service's objects: <release>-<service, dashed>. */}}
{{- define "sandwich.serviceName" -}}
{{- printf "%s-%s" .root.Release.Name (include "sandwich.dashed" .name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sandwich.labels" -}}
app.kubernetes.io/name: {{ include "sandwich.dashed" .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: sandwich
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "sandwich.selector" -}}
app.kubernetes.io/name: {{ include "sandwich.dashed" .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "sandwich.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The secrets' Secret: made by `sandwich secrets kubernetes`, never by the chart (no defaults). */}}
{{- define "sandwich.secretsName" -}}
{{- required "secrets.name: the Secret `sandwich secrets kubernetes` made (docs/deploy.md)" .Values.secrets.name -}}
{{- end -}}

{{- define "sandwich.postgresHost" -}}
{{- if .Values.postgres.cloudnativepg.enabled -}}
{{- printf "%s-postgres-rw" .Release.Name -}}
{{- else -}}
{{- required "postgres.host: the PostgreSQL server (or postgres.cloudnativepg.enabled)" .Values.postgres.host -}}
{{- end -}}
{{- end -}}

{{- define "sandwich.adminSecret" -}}
{{- if .Values.postgres.cloudnativepg.enabled -}}
{{- .Values.postgres.adminSecret.name | default (printf "%s-postgres-superuser" .Release.Name) -}}
{{- else -}}
{{- required "postgres.adminSecret.name: a Secret with a superuser's URL for the migration Job" .Values.postgres.adminSecret.name -}}
{{- end -}}
{{- end -}}

{{- define "sandwich.usesBroker" -}}{{- if ne .Values.flow "sync" -}}true{{- end -}}{{- end -}}

{{/* The services `name` calls (from files/platform.json, written from the code), and for the gateway,
every service: its System overview reads each one's health and metrics. */}}
{{- define "sandwich.peers" -}}
{{- $peers := dict -}}
{{- $calls := (.root.Files.Get "files/platform.json" | fromJson).calls -}}
{{- range $calls -}}{{- if eq .caller $.name -}}{{- $_ := set $peers .callee true -}}{{- end -}}{{- end -}}
{{- if eq .name "gateway" -}}{{- range $service, $_ := .root.Values.services -}}{{- $_ := set $peers $service true -}}{{- end -}}{{- end -}}
{{- if eq .name "web" -}}{{- $_ := set $peers "gateway" true -}}{{- end -}}
{{- keys $peers | sortAlpha | join "," -}}
{{- end -}}

{{/* Every variable a service reads (src/sandwich/platform/settings.py), nothing else. */}}
{{- define "sandwich.env" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $own := index $values.services .name -}}
- name: SANDWICH_SERVICE
  value: {{ .name | quote }}
- name: SANDWICH_FLOW
  value: {{ $values.flow | quote }}
- name: SANDWICH_HOST
  value: "0.0.0.0"
- name: SANDWICH_PORT
  value: "8080"
- name: SANDWICH_DATA_DIR
  value: /tmp/sandwich
- name: SANDWICH_SECRETS_DIR
  value: /var/run/sandwich/secrets
- name: SANDWICH_LOG_LEVEL
  value: {{ $values.logLevel | quote }}
{{- if ne .name "gateway" }}
{{- $database := printf "%s_%s" $values.postgres.databasePrefix .name }}
- name: SANDWICH_DB_PREFIX
  value: {{ $values.postgres.databasePrefix | quote }}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s@%s:%d/%s?sslmode=%s" $database (include "sandwich.postgresHost" $root) (int $values.postgres.port) $database $values.postgres.sslmode | quote }}
- name: SANDWICH_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "sandwich.secretsName" $root }}, key: {{ printf "database-%s" .name | quote }}}
{{- end }}
{{- if include "sandwich.usesBroker" $root }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "broker.kafka.bootstrapServers: the Kafka cluster (flow hybrid and async publish events)" $values.broker.kafka.bootstrapServers | quote }}
- name: SANDWICH_KAFKA_PARTITIONS
  value: {{ $values.broker.kafka.partitions | quote }}
- name: SANDWICH_TOPIC_PREFIX
  value: {{ $values.broker.topicPrefix | quote }}
{{- end }}
{{- range $peer := splitList "," (include "sandwich.peers" .) }}
{{- if $peer }}
- name: {{ printf "SANDWICH_URL_%s" (upper $peer) }}
  value: {{ printf "http://%s:8080" (include "sandwich.serviceName" (dict "root" $root "name" $peer)) | quote }}
{{- end }}
{{- end }}
{{- with $values.tracing }}
{{- if .otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerRatio | quote }}
{{- end }}
{{- if .uiUrl }}
- name: SANDWICH_TRACES_URL
  value: {{ .uiUrl | quote }}
{{- end }}
{{- end }}
{{- if eq .name "auth" }}
- name: SANDWICH_ADMIN_USERNAME
  value: {{ $values.admin.username | quote }}
- name: SANDWICH_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "sandwich.secretsName" $root }}, key: admin-password}
{{- end }}
{{- if eq .name "notifications" }}
- name: SANDWICH_SMTP_HOST
  value: {{ required "smtp.host: the mail server notifications sends letters through" $values.smtp.host | quote }}
- name: SANDWICH_SMTP_PORT
  value: {{ $values.smtp.port | quote }}
- name: SANDWICH_MAIL_FROM
  value: {{ $values.smtp.from | quote }}
{{- end }}
{{- range $name, $value := merge (deepCopy ($own.settings | default dict)) ($values.settings | default dict) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The service's files under SANDWICH_SECRETS_DIR: its own private key, every public key, and its
sealing key (auth, web). Read-only, readable by the service's group only. */}}
{{- define "sandwich.secretItems" -}}
- key: {{ printf "%s.key" .name | quote }}
  path: {{ printf "services/%s.key" .name | quote }}
{{- range $service, $_ := .root.Values.services }}
- key: {{ printf "%s.pub" $service | quote }}
  path: {{ printf "services/%s.pub" $service | quote }}
{{- end }}
{{- if eq .name "auth" }}
- key: signing-keys.seal
  path: auth/signing-keys.seal
{{- end }}
{{- if eq .name "web" }}
- key: sessions.seal
  path: web/sessions.seal
{{- end }}
{{- end -}}
