{{- define "accord.labels" -}}
app.kubernetes.io/part-of: accord
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "accord.selector" -}}
app.kubernetes.io/part-of: accord
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "accord.bootstrap" -}}
{{ .Values.kafka.name }}-kafka-bootstrap:9093
{{- end -}}

{{/* Settings every hub process shares; `principal` signs in to Kafka. */}}
{{- define "accord.env" -}}
- name: ACCORD_ENV
  value: prod
- name: ACCORD_PRINCIPAL
  value: {{ .principal }}
- name: ACCORD_SECRET_FILE
  value: /var/run/accord/scram/password
- name: ACCORD_BOOTSTRAP_SERVERS
  value: {{ include "accord.bootstrap" .root }}
- name: ACCORD_SCHEMA_REGISTRY_URL
  value: https://{{ .root.Release.Name }}-registry:{{ .root.Values.registry.port }}
- name: ACCORD_OPA_URL
  value: http://{{ .root.Release.Name }}-opa:8181
- name: ACCORD_OPA_TOKEN_FILE
  value: /var/run/accord/opa/token
- name: ACCORD_CA_FILE
  value: /var/run/accord/ca/ca.crt
- name: ACCORD_TOPIC_PREFIX
  value: {{ .root.Values.generated.topicPrefix | quote }}
- name: ACCORD_WORKER_ID
  value: {{ .root.Values.generated.workerGroup }}
- name: ACCORD_TOPIC_PARTITIONS
  value: {{ .root.Values.generated.topicPartitions | quote }}
- name: ACCORD_METRICS_HOST
  value: 0.0.0.0   # the NetworkPolicy decides who reaches it
- name: ACCORD_LOG_FORMAT
  value: json
{{- end -}}

{{- define "accord.mounts" -}}
- {name: scram, mountPath: /var/run/accord/scram, readOnly: true}
- {name: opa-token, mountPath: /var/run/accord/opa, readOnly: true}
- {name: ca, mountPath: /var/run/accord/ca, readOnly: true}
{{- end -}}

{{- define "accord.volumes" -}}
- name: scram
  secret:
    secretName: {{ .root.Values.scramSecretPrefix }}{{ .principal }}
    items: [{key: password, path: password}]
    defaultMode: 0400
- name: opa-token
  secret:
    secretName: {{ .root.Values.opaTokenSecret }}
    items: [{key: token, path: token}]
    defaultMode: 0400
- name: ca
  secret:
    secretName: {{ .root.Values.caSecret }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end -}}

{{- define "accord.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  initialDelaySeconds: 30
  periodSeconds: 10
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

{{- define "accord.security" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
