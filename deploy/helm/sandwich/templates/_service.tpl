{{/* A service's objects, the same shape for every one: ServiceAccount, Deployment, Service,
PodDisruptionBudget, HorizontalPodAutoscaler (optional) and NetworkPolicy (optional). */}}
{{- define "sandwich.service" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $own := index $values.services .name -}}
{{- if $own.create -}}
{{- $fullname := include "sandwich.serviceName" . -}}
{{- $replicas := $own.replicas | default $values.replicas -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "sandwich.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "sandwich.labels" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "8080"
        prometheus.io/path: /metrics
    spec:
      serviceAccountName: {{ $fullname }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 20
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "sandwich.selector" . | nindent 14 }}
      containers:
        - name: {{ include "sandwich.dashed" .name }}
          image: {{ include "sandwich.image" $root | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          args: ["serve", {{ .name | quote }}]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            {{- include "sandwich.env" . | nindent 12 }}
          startupProbe:
            httpGet: {path: /health/live, port: http}
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet: {path: /health/live, port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health/ready, port: http}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          resources:
            {{- toYaml ($own.resources | default $values.resources) | nindent 12 }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            - name: secrets
              mountPath: /var/run/sandwich/secrets
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: secrets
          secret:
            secretName: {{ include "sandwich.secretsName" $root }}
            defaultMode: 0440
            items:
              {{- include "sandwich.secretItems" . | nindent 14 }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
spec:
  selector:
    {{- include "sandwich.selector" . | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- if $values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "sandwich.selector" . | nindent 6 }}
{{- end }}
{{- if $values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $values.networkPolicy.enabled }}
---
{{ include "sandwich.networkPolicy" . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Who may open a connection to a service: the services that call it (files/platform.json), the
gateway (System overview), Prometheus; for the gateway and web, the ingress's namespace too. The mesh's
AuthorizationPolicies narrow this to methods and paths. */}}
{{- define "sandwich.networkPolicy" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $callers := dict "gateway" true -}}
{{- range (($root.Files.Get "files/platform.json" | fromJson).calls) -}}{{- if eq .callee $name -}}{{- $_ := set $callers .caller true -}}{{- end -}}{{- end -}}
{{- if eq $name "gateway" -}}{{- $_ := set $callers "web" true -}}{{- end -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "sandwich.serviceName" . }}
  labels:
    {{- include "sandwich.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "sandwich.selector" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - port: http
          protocol: TCP
      from:
        {{- range $caller := keys $callers | sortAlpha }}
        - podSelector:
            matchLabels:
              {{- include "sandwich.selector" (dict "root" $root "name" $caller) | nindent 14 }}
        {{- end }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $root.Values.networkPolicy.monitoringNamespace }}
        {{- if or (eq $name "gateway") (eq $name "web") }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $root.Values.networkPolicy.ingressNamespace }}
        {{- end }}
{{- end -}}
