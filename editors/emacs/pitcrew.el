;;; pitcrew.el --- Commands for the pitcrew language server under eglot  -*- lexical-binding: t; -*-

;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: tools, languages
;; URL: https://github.com/pitcrew/pitcrew (editors/emacs)

;;; Commentary:

;; Optional.  eglot alone runs pitcrew: its code actions ("Delegate: ...", "Apply result of
;; ...", the reviewer's quick fixes) and its Flymake diagnostics need nothing more.  This file
;; adds what eglot has no generic command for:
;;
;;   M-x pitcrew-delegate    delegate the region (or the line) with an instruction
;;   M-x pitcrew-review      have the reviewer look at the region (or the file)
;;   M-x pitcrew-plan-goal   have the planner split a goal into tasks
;;   M-x pitcrew-show-plan   a plan's tasks and their state, in a buffer (g refreshes)
;;   M-x pitcrew-apply       apply a ready plan (also: pitcrew-discard, -cancel, -retry)
;;
;; It reports plans as they change (`pitcrew/planChanged') in the echo area, shows how many
;; are at work in the mode line (eglot 1.9 shows no `$/progress'), and, on Emacs 28,
;; works around a jsonrpc.el bug that can hold a server message back until the next one
;; arrives (see `pitcrew--finish-process-filter').
;;
;; Setup (see editors/README.md):
;;
;;   (add-to-list 'load-path "/path/to/pitcrew/editors/emacs")
;;   (require 'pitcrew)
;;   (add-to-list 'eglot-server-programs '((c-mode c++-mode) . ("pitcrew" "lsp")))

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'eglot)
(require 'jsonrpc)

(defgroup pitcrew nil
  "The pitcrew language server: a team of coding agents behind the editor."
  :group 'tools
  :prefix "pitcrew-")

(defcustom pitcrew-report-statuses '("ready" "applied" "failed" "escalated" "cancelled")
  "Plan statuses announced in the echo area when a plan reaches them."
  :type '(repeat string))

(defcustom pitcrew-mode-line t
  "Show in the mode line how many plans the team is working on."
  :type 'boolean)

(defvar pitcrew--mode-line ""
  "What the mode line shows of the team's work: \" pitcrew: 2 at work\" or \"\".")
(put 'pitcrew--mode-line 'risky-local-variable t)

(defun pitcrew--update-mode-line ()
  "Count the plans at work, from the latest `pitcrew/planChanged' of each."
  (let ((working 0))
    (maphash (lambda (_id entry)
               (when (member (car entry) '("planning" "running" "testing"))
                 (setq working (1+ working))))
             pitcrew--plans)
    (setq pitcrew--mode-line
          (if (> working 0) (format " pitcrew: %d at work" working) ""))
    (force-mode-line-update t)))

(when (and pitcrew-mode-line (boundp 'global-mode-string))
  (let ((current global-mode-string))
    (unless (and (listp current) (memq 'pitcrew--mode-line current))
      (setq global-mode-string
            (cond
             ;; A list of mode-line elements that starts with a string: add ours at its end.
             ((and (consp current) (stringp (car current)))
              (append current '(pitcrew--mode-line)))
             ;; Anything else (nil, a string, a symbol, an (:eval …) form, a conditional) is
             ;; one element: keep it whole, before ours.
             ((null current) '("" pitcrew--mode-line))
             (t (list "" current 'pitcrew--mode-line)))))))

(defvar pitcrew-plan-changed-functions nil
  "Functions called with (SERVER PLAN-ID STATUS PLAN) on `pitcrew/planChanged'.
PLAN is the plan as `pitcrew/plan' returns it, a plist.")

(defvar pitcrew--plans (make-hash-table :test 'equal)
  "planId -> (STATUS . PLAN), from the latest `pitcrew/planChanged'.")

;;;; Server messages

(cl-defmethod eglot-handle-notification
  (server (_method (eql pitcrew/planChanged)) &key planId status plan &allow-other-keys)
  "Record and announce a change of plan PLANID to STATUS."
  (let ((before (car (gethash planId pitcrew--plans))))
    (puthash planId (cons status plan) pitcrew--plans)
    (pitcrew--update-mode-line)
    (when (and (not (equal before status)) (member status pitcrew-report-statuses))
      (message "pitcrew: %s — %s%s" (plist-get plan :goal) status
               (if (equal status "ready") " (M-x pitcrew-apply, or the code action)" "")))
    (run-hook-with-args 'pitcrew-plan-changed-functions server planId status plan)
    (pitcrew--refresh-plan-buffers planId plan)))

(defun pitcrew-plan-status (plan-id)
  "The status `pitcrew/planChanged' last reported for PLAN-ID, or nil."
  (car (gethash plan-id pitcrew--plans)))

;; jsonrpc.el before Emacs 30 runs a request's continuation inside the process filter, and
;; `jsonrpc-request' returns by throwing out of it: messages that arrived in the same read as
;; the reply stay unparsed in the process buffer until more output comes.  pitcrew answers
;; `pitcrew.apply' and sends `workspace/applyEdit' right after, so the edit could wait for
;; whatever the server says next.  Parse what is left once the throw is over.
(defun pitcrew--finish-process-filter (filter proc string)
  "Call FILTER with PROC and STRING; if it exits non-locally, parse the rest soon."
  (let ((finished nil))
    (unwind-protect
        (prog1 (funcall filter proc string)
          (setq finished t))
      (unless finished
        (run-at-time 0 nil (lambda ()
                             (when (process-live-p proc)
                               (funcall filter proc ""))))))))

(when (fboundp 'jsonrpc--process-filter)
  (advice-add 'jsonrpc--process-filter :around #'pitcrew--finish-process-filter))

;;;; Talking to the server

(defun pitcrew--server ()
  "The eglot server of this buffer, which must be pitcrew."
  (let ((server (or (eglot-current-server)
                    (user-error "No eglot server here: M-x eglot to start pitcrew"))))
    (unless (member "pitcrew.delegate"
                    (append (plist-get (eglot--server-capable :executeCommandProvider)
                                       :commands)
                            nil))
      (user-error "This buffer's server is not pitcrew"))
    server))

(defun pitcrew--command (command &optional arguments server)
  "Run pitcrew's COMMAND with the ARGUMENTS plist on SERVER.
SERVER is this buffer's by default."
  (jsonrpc-request (or server (pitcrew--server)) :workspace/executeCommand
                   `(:command ,command :arguments [,(or arguments eglot--{})])))

(defun pitcrew--selection (beg end)
  "The `uri' and `range' arguments for BEG..END of this buffer."
  (list :uri (plist-get (eglot--TextDocumentIdentifier) :uri)
        :range (list :start (eglot--pos-to-lsp-position beg)
                     :end (eglot--pos-to-lsp-position end))))

(defun pitcrew--region-or-line ()
  (if (use-region-p)
      (list (region-beginning) (region-end))
    (list (line-beginning-position) (line-beginning-position 2))))

(defun pitcrew--started (result what)
  (let ((plan-id (plist-get result :planId)))
    (message "pitcrew: %s started as plan %s (M-x pitcrew-show-plan)" what plan-id)
    plan-id))

(defun pitcrew--read-plan (prompt &optional statuses)
  "Read a plan id with PROMPT among the plans (in STATUSES, when given)."
  (let* ((plans (append (plist-get (jsonrpc-request (pitcrew--server) :pitcrew/plans nil)
                                   :plans)
                        nil))
         (plans (if statuses
                    (cl-remove-if-not (lambda (p) (member (plist-get p :status) statuses))
                                      plans)
                  plans))
         (choices (mapcar (lambda (p)
                            (cons (format "%s  %-10s %s" (plist-get p :planId)
                                          (plist-get p :status) (plist-get p :goal))
                                  (plist-get p :planId)))
                          plans)))
    (unless choices
      (user-error "pitcrew: no plan to choose from"))
    (if (null (cdr choices))
        (cdar choices)
      (cdr (assoc (completing-read prompt choices nil t nil nil (caar choices)) choices)))))

;;;; Commands

;;;###autoload
(defun pitcrew-delegate (beg end instruction)
  "Delegate BEG..END to an implementer with INSTRUCTION.
Interactively, the region or the current line.  An empty INSTRUCTION uses the
`pitcrew:' comment in the selection."
  (interactive (append (pitcrew--region-or-line)
                       (list (read-string "pitcrew, implement: "))))
  (pitcrew--started
   (pitcrew--command "pitcrew.delegate"
                     `(,@(pitcrew--selection beg end)
                       ,@(unless (string-empty-p instruction) `(:instruction ,instruction))))
   "the delegated task"))

;;;###autoload
(defun pitcrew-review (beg end)
  "Have the reviewer look at BEG..END; interactively, the region or the whole file."
  (interactive (if (use-region-p)
                   (list (region-beginning) (region-end))
                 (list nil nil)))
  (pitcrew--started
   (pitcrew--command "pitcrew.review"
                     (if beg
                         (pitcrew--selection beg end)
                       (list :uri (plist-get (eglot--TextDocumentIdentifier) :uri))))
   "the review"))

;;;###autoload
(defun pitcrew-plan-goal (goal)
  "Have the planner split GOAL into tasks for the team."
  (interactive (list (read-string "pitcrew, plan: ")))
  (pitcrew--started (pitcrew--command "pitcrew.plan" `(:goal ,goal)) "the plan"))

(defun pitcrew--plan-command (command prompt statuses)
  (let ((plan-id (pitcrew--read-plan prompt statuses)))
    (pitcrew--command command `(:planId ,plan-id))
    plan-id))

;;;###autoload
(defun pitcrew-apply ()
  "Apply a ready plan's result to the buffers (the server sends the edit)."
  (interactive)
  (pitcrew--plan-command "pitcrew.apply" "Apply plan: " '("ready")))

;;;###autoload
(defun pitcrew-discard ()
  "Discard a plan's result."
  (interactive)
  (pitcrew--plan-command "pitcrew.discard" "Discard plan: " nil))

;;;###autoload
(defun pitcrew-cancel ()
  "Cancel a running plan."
  (interactive)
  (pitcrew--plan-command "pitcrew.cancel" "Cancel plan: " '("planning" "running" "testing")))

;;;###autoload
(defun pitcrew-retry ()
  "Retry a plan that failed, was escalated or interrupted."
  (interactive)
  (pitcrew--plan-command "pitcrew.retry" "Retry plan: " nil))

;;;; The plan buffer

(defvar-local pitcrew--buffer-plan nil "The plan id this buffer shows.")
(defvar-local pitcrew--buffer-server nil "The server this buffer asks.")

(define-derived-mode pitcrew-plan-mode special-mode "pitcrew-plan"
  "A pitcrew plan: its tasks and their state.
\\<pitcrew-plan-mode-map>\\[revert-buffer] refreshes it; it also refreshes itself
as the plan changes."
  (setq-local revert-buffer-function #'pitcrew--revert-plan-buffer))

(defun pitcrew--insert-plan (plan)
  (insert (propertize (format "Plan %s: %s\n" (plist-get plan :planId) (plist-get plan :goal))
                      'face 'bold)
          (format "Status: %s%s   tokens: %s\n" (plist-get plan :status)
                  (if (eq (plist-get plan :running) t) " (running)" "")
                  (plist-get plan :tokens)))
  (when-let ((outcome (plist-get plan :outcome)))
    (insert outcome "\n"))
  (when-let ((question (plist-get plan :question)))
    (insert (propertize (format "\nQuestion: %s\n" (plist-get question :text)) 'face 'warning)))
  (insert "\nTasks:\n")
  (cl-loop for task across (plist-get plan :tasks)
           do (insert (format "  %-20s %-18s %s%s\n"
                              (plist-get task :taskId) (plist-get task :status)
                              (plist-get task :title)
                              (if (> (plist-get task :findings) 0)
                                  (format "  [%d findings]" (plist-get task :findings))
                                "")))
           (when-let ((error (plist-get task :error)))
             (insert (format "      %s\n" error)))))

(defun pitcrew--draw-plan (plan)
  "Show PLAN in the current buffer, keeping point on the same line."
  (let ((inhibit-read-only t)
        (line (line-number-at-pos)))
    (erase-buffer)
    (pitcrew--insert-plan plan)
    (goto-char (point-min))
    (forward-line (1- line))))

(defun pitcrew--revert-plan-buffer (&rest _)
  (pitcrew--draw-plan (jsonrpc-request pitcrew--buffer-server :pitcrew/plan
                                       `(:planId ,pitcrew--buffer-plan))))

(defun pitcrew--refresh-plan-buffers (plan-id plan)
  "Redraw the buffers showing PLAN-ID from PLAN.
PLAN is the snapshot the notification carried: no request to the server,
as notifications come up to ten a second."
  (dolist (buffer (buffer-list))
    (with-current-buffer buffer
      (when (and (derived-mode-p 'pitcrew-plan-mode)
                 (equal pitcrew--buffer-plan plan-id))
        (pitcrew--draw-plan plan)))))

;;;###autoload
(defun pitcrew-show-plan (plan-id)
  "Show plan PLAN-ID in a buffer, and return it.
Interactively, choose among the plans (the most recent first)."
  (interactive (list (pitcrew--read-plan "Show plan: ")))
  (let ((server (pitcrew--server))
        (buffer (get-buffer-create (format "*pitcrew plan %s*" plan-id))))
    (with-current-buffer buffer
      (pitcrew-plan-mode)
      (setq pitcrew--buffer-plan plan-id
            pitcrew--buffer-server server)
      (revert-buffer))
    (pop-to-buffer buffer)))

(provide 'pitcrew)
;;; pitcrew.el ends here
